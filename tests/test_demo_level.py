"""`fad demo --level`: which shapes set every stage runs on, and stage 0's own budget."""

from __future__ import annotations

import json

import pytest

from fad.cli import main
from fad.config import load_config
from fad.demo import BACKBONE_JSON, CONFIGS, packaged_config, pretrain_backbone
from fad.demo_level import LEVELS, demo_level, stage_opts
from fad.errors import FadError

HARD = LEVELS["hard"]


def _stage(stage: str, opts: list[str], stage0: tuple[str, ...] = ()):
    first = list(stage0) if stage == "backbone" else []
    return load_config(packaged_config(CONFIGS[stage]), [*first, *opts])


def test_the_hard_level_runs_every_stage_on_shapes_hard_and_stage0_longer():
    opts = stage_opts(HARD, [])
    for stage in CONFIGS:
        easy, hard = _stage(stage, []), _stage(stage, opts, HARD.stage0_opts)
        assert easy.DATASETS.TRAIN == ("shapes_train",)
        assert hard.DATASETS.TRAIN == ("shapes_hard_train",)
        assert hard.DATASETS.TEST == ("shapes_hard_val",)
        assert hard.MODEL.FCOS.NUM_CLASSES == 6 != easy.MODEL.FCOS.NUM_CLASSES
        if stage == "backbone":
            assert (hard.SOLVER.MAX_ITER, hard.SOLVER.STEPS) == (1200, (960, 1140))
            assert easy.SOLVER.MAX_ITER < 1200
        else:  # the search and the trainings keep their budgets
            assert hard.SOLVER.MAX_ITER == easy.SOLVER.MAX_ITER


def test_the_users_overrides_win_over_the_levels():
    opts = stage_opts(HARD, ["SOLVER.MAX_ITER", "7", "MODEL.FCOS.NUM_CLASSES", "4"])
    backbone = _stage("backbone", opts, HARD.stage0_opts)
    assert backbone.SOLVER.MAX_ITER == 7 and backbone.MODEL.FCOS.NUM_CLASSES == 4
    assert backbone.DATASETS.TRAIN == ("shapes_hard_train",)


def test_an_unknown_level_is_refused_naming_the_levels(capsys):
    with pytest.raises(FadError, match="--level 'medium': unknown; the levels are easy, hard"):
        demo_level("medium")
    with pytest.raises(SystemExit):
        main(["demo", "--level", "medium"])
    assert "invalid choice: 'medium'" in capsys.readouterr().err


def test_a_backbone_of_one_level_is_never_reused_for_another(tmp_path, monkeypatch):
    trained = []

    def fake_training(cfg):
        trained.append((cfg.SOLVER.MAX_ITER, cfg.DATASETS.TRAIN))
        return {"eval": {"val": {"coco": {"AP": 0.5}}}}

    monkeypatch.setattr("fad.demo.run_training", fake_training)
    opts = stage_opts(HARD, [])
    record = pretrain_backbone(tmp_path, opts, HARD.stage0_opts)
    assert trained == [(1200, ("shapes_hard_train",))]
    saved = json.loads((tmp_path / "backbone" / BACKBONE_JSON).read_text())
    assert saved["opts"] == [*HARD.stage0_opts, *opts] == record["opts"]
    assert pretrain_backbone(tmp_path, opts, HARD.stage0_opts)["opts"] == saved["opts"]
    assert len(trained) == 1  # reused
    with pytest.raises(FadError, match="was made with the overrides"):
        pretrain_backbone(tmp_path, opts)  # the hard set with the easy level's stage 0
    with pytest.raises(FadError, match="was made with the overrides"):
        pretrain_backbone(tmp_path, [])
    assert len(trained) == 1


def test_the_cli_passes_the_level_to_every_stage_into_its_own_folder(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("fad.demo.run_demo", lambda out, opts, **kw: calls.append((out, opts, kw)))
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--level", "hard", "SOLVER.MAX_ITER", "90"]) == 0
    out, opts, kw = calls[-1]
    assert out == "training_dir/demo_hard"
    assert opts == [*HARD.opts, "SOLVER.MAX_ITER", "90"]
    assert kw == {"seed": 0, "stage0_opts": HARD.stage0_opts}
    assert main(["demo", "--out", "d"]) == 0
    assert calls[-1] == ("d", [], {"seed": 0, "stage0_opts": ()})

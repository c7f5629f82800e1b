"""`fad train` / `fad eval` end to end on a tiny shapes set, and exact resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fad.cli import main
from fad.config import load_config
from fad.engine.train import run_training as train
from fad.errors import FadError
from fad.runtime.checkpoint import load_checkpoint


def _run(shapes_config, opts, *extra):
    cfg = load_config(shapes_config, list(opts) + list(extra))
    return cfg, train(cfg, skip_test=True)


def test_training_changes_weights_and_writes_checkpoints(shapes_config, tiny_opts, tmp_path):
    cfg, result = _run(
        shapes_config, tiny_opts, "SOLVER.MAX_ITER", "3", "SOLVER.CHECKPOINT_PERIOD", "2"
    )
    out = Path(cfg.OUTPUT_DIR)
    assert (out / "model_final.pth").is_file() and (out / "model_0000002.pth").is_file()
    assert (out / "last_checkpoint").read_text().strip() == "model_final.pth"
    assert (out / "config.yaml").is_file() and (out / "log.txt").is_file()
    final = load_checkpoint(out / "model_final.pth")
    early = load_checkpoint(out / "model_0000002.pth")
    assert final["iteration"] == 3 and early["iteration"] == 2
    assert final["meta"]["class_names"] == ["circle", "square", "triangle", "star", "cross"]
    changed = [
        k
        for k, v in final["model"].items()
        if v.is_floating_point() and not torch.equal(v, early["model"][k])
    ]
    assert any("head" in k for k in changed) and any("backbone" in k for k in changed)
    assert result["train"]["iterations"] == 3


def test_resumed_training_is_bit_identical(shapes_config, tiny_opts, tmp_path):
    straight = tiny_opts + ["SOLVER.MAX_ITER", "4", "OUTPUT_DIR", str(tmp_path / "a")]
    _run(shapes_config, straight)
    first = tiny_opts + ["SOLVER.MAX_ITER", "2", "OUTPUT_DIR", str(tmp_path / "b")]
    _run(shapes_config, first)
    cfg, result = _run(shapes_config, first, "SOLVER.MAX_ITER", "4")
    assert result["train"]["iterations"] == 2  # resumed at 2
    a = load_checkpoint(tmp_path / "a" / "model_final.pth")
    b = load_checkpoint(tmp_path / "b" / "model_final.pth")
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()


def test_resuming_with_another_optimizer_is_a_clear_error(shapes_config, tiny_opts, tmp_path):
    first = tiny_opts + ["SOLVER.MAX_ITER", "1", "SOLVER.OPTIMIZER", "SGD"]
    _run(shapes_config, first)
    with pytest.raises(
        FadError,
        match=r"model_final.pth holds the state of an SGD optimizer, "
        r"not of AdamW: resume with the SOLVER.OPTIMIZER",
    ):
        _run(shapes_config, tiny_opts, "SOLVER.MAX_ITER", "2", "SOLVER.OPTIMIZER", "AdamW")
    cfg, result = _run(shapes_config, first, "SOLVER.MAX_ITER", "2")  # the same optimizer goes on
    assert result["train"]["iterations"] == 1


@pytest.mark.slow
def test_cli_train_then_eval_prints_coco_table(shapes_config, tiny_opts, tmp_path, capsys):
    assert (
        main(["train", "--config-file", str(shapes_config), *tiny_opts, "SOLVER.MAX_ITER", "2"])
        == 0
    )
    out = tmp_path / "out"
    printed = capsys.readouterr().out
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]" in printed
    assert (out / "inference").is_dir()
    code = main(
        [
            "eval",
            "--config-file",
            str(shapes_config),
            *tiny_opts,
            "MODEL.WEIGHT",
            str(out / "model_final.pth"),
            "TEST.IMS_PER_BATCH",
            "4",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.count("Average Recall") == 6
    assert "circle" in printed  # per-class table


def test_eval_with_missing_weights_is_one_line_error(shapes_config, tiny_opts, capsys):
    code = main(
        ["eval", "--config-file", str(shapes_config), *tiny_opts, "MODEL.WEIGHT", "/nope.pth"]
    )
    assert code == 2
    assert "/nope.pth" in capsys.readouterr().err

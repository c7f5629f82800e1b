"""Everything checkable without the data is checked before anything is written (the preflight of
train, search, eval and predict): dataset names, the seed, settings that would silently measure
nothing, the weights file, the genotype file. Each failure is a one-line error and leaves no
OUTPUT_DIR, log or config behind."""

from __future__ import annotations

import pytest

from fad.cli import main
from fad.errors import FadError
from fad.search_space.genotype import parse_genotype, read_genotype_file

TRAIN_FAULTS = [
    (["DATASETS.TRAIN", "('',)"], "DATASETS.TRAIN must hold dataset names"),
    (["DATASETS.TRAIN", "('coco_2017_trian',)"], "Did you mean 'coco_2017_train'?"),
    (["DATASETS.TRAIN", "()"], "DATASETS.TRAIN is empty"),
    (["DATASETS.TRAIN", "('/no/such/dir@/no/such.json',)"], "missing /no/such/dir"),
    (["DATASETS.TEST", "('voc_2007_tset',)"], "unknown dataset 'voc_2007_tset'"),
    (["SEED", "-1"], "SEED must be in [0, 2147483647], got -1"),
    (["SEED", "99999999999"], "SEED must be in [0, 2147483647]"),
    (["TEST.DETECTIONS_PER_IMG", "0"], "TEST.DETECTIONS_PER_IMG must be >= 1, got 0"),
    (["MODEL.FCOS.PRE_NMS_TOP_N", "0"], "MODEL.FCOS.PRE_NMS_TOP_N must be >= 1, got 0"),
    (["MODEL.FCOS.INFERENCE_TH", "1.0"], "MODEL.FCOS.INFERENCE_TH must be in [0, 1), got 1.0"),
    (
        ["MODEL.WEIGHT", "/no/such/backbone.pth"],
        "MODEL.WEIGHT /no/such/backbone.pth: file not found",
    ),
]


def _one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith(f"fad {command}: error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    ("override", "expected"), TRAIN_FAULTS, ids=[" ".join(o) for o, _ in TRAIN_FAULTS]
)
def test_train_faults_stop_before_anything_is_written(
    override, expected, shapes_config, fast_opts, tmp_path, capsys, no_heavy_work
):
    assert main(["train", "--config-file", str(shapes_config), *fast_opts, *override]) == 2
    assert expected in _one_line_error(capsys, "train")
    assert not (tmp_path / "out").exists()


def test_search_checks_its_datasets_and_seed_first(
    shapes_config, search_opts, tmp_path, capsys, no_heavy_work
):
    config = shapes_config.parent / "search_fad_R_18_FPN.yaml"
    args = ["search", "--config-file", str(config), *search_opts]
    assert main([*args, "DATASETS.TRAIN", "('nope',)"]) == 2
    assert "unknown dataset 'nope'" in _one_line_error(capsys, "search")
    assert main([*args, "SEED", "-5"]) == 2
    assert "SEED must be in [0, " in _one_line_error(capsys, "search")
    assert not (tmp_path / "out").exists()


def test_a_shapes_name_passes_the_preflight_without_generating_data(
    shapes_config, fast_opts, tmp_path, capsys, monkeypatch
):
    from fad.engine import preflight

    monkeypatch.setenv("FAD_DATASETS", str(tmp_path / "datasets"))
    cfg_opts = fast_opts + ["DATASETS.TRAIN", "('shapes_train',)", "DATASETS.TEST", "()"]
    from fad.config import load_config

    preflight.check_run(load_config(shapes_config, cfg_opts), train=True, test=False)
    assert not (tmp_path / "datasets").exists()


EVAL_FAULTS = [
    (["DATASETS.TEST", "()"], "DATASETS.TEST is empty: fad eval has nothing to evaluate"),
    (["MODEL.WEIGHT", "/no/such.pth"], "MODEL.WEIGHT /no/such.pth: file not found"),
    (["MODEL.WEIGHT", ""], "MODEL.WEIGHT is empty"),
    (["TEST.DETECTIONS_PER_IMG", "0"], "TEST.DETECTIONS_PER_IMG must be >= 1"),
    (["SEED", "-1"], "SEED must be in [0, 2147483647]"),
    (["DATASETS.TEST", "('',)"], "DATASETS.TEST must hold dataset names"),
]


@pytest.mark.parametrize(
    ("override", "expected"), EVAL_FAULTS, ids=[" ".join(o) for o, _ in EVAL_FAULTS]
)
def test_eval_faults_stop_before_anything_is_written(
    override, expected, shapes_config, fast_opts, tiny_weights, tmp_path, capsys, no_heavy_work
):
    opts = fast_opts + ["MODEL.WEIGHT", str(tiny_weights), *override]
    assert main(["eval", "--config-file", str(shapes_config), *opts]) == 2
    assert expected in _one_line_error(capsys, "eval")
    assert not (tmp_path / "out").exists()


def test_eval_with_an_unreadable_weights_file_writes_nothing(
    shapes_config, fast_opts, tmp_path, capsys, no_heavy_work
):
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"garbage")
    opts = fast_opts + ["MODEL.WEIGHT", str(weights)]
    assert main(["eval", "--config-file", str(shapes_config), *opts]) == 2
    assert f"cannot load checkpoint {weights}" in _one_line_error(capsys, "eval")
    assert not (tmp_path / "out").exists()


def test_a_bad_genotype_file_stops_eval_before_anything_is_written(
    shapes_config, fast_opts, tiny_weights, tmp_path, capsys, no_heavy_work
):
    genotypes = tmp_path / "genotype.log"
    genotypes.write_text("Genotype(normal=[[('nope', 0)]], normal_concat=range(2, 3))\n")
    opts = fast_opts + ["MODEL.WEIGHT", str(tiny_weights)]
    code = main(
        ["eval", "--genotype-file", str(genotypes), "--config-file", str(shapes_config), *opts]
    )
    assert code == 2
    assert f"{genotypes}:1:" in _one_line_error(capsys, "eval")
    assert not (tmp_path / "out").exists()


def test_predict_checks_its_images_and_settings_before_writing(tiny_weights, tmp_path, capsys):
    image = tmp_path / "none.jpg"
    out = tmp_path / "preds"
    assert main(["predict", str(tiny_weights), str(image), "--out", str(out)]) == 2
    assert "image or folder not found" in _one_line_error(capsys, "predict")
    args = ["predict", str(tiny_weights), str(tmp_path), "--out", str(out)]
    assert main([*args, "TEST.DETECTIONS_PER_IMG", "0"]) == 2
    assert "TEST.DETECTIONS_PER_IMG must be >= 1" in _one_line_error(capsys, "predict")
    assert not out.exists()


@pytest.mark.parametrize(
    "text",
    [
        "Genotype(normal=[[('a', " + "-" * 3000 + "1)]], normal_concat=range(2, 3))",
        "Genotype(normal=[[('a', 1" + "+1" * 10000 + ")]], normal_concat=range(2, 3))",
        "Genotype(normal=" + "[" * 150 + "]" * 150 + ", normal_concat=range(2, 3))",
    ],
    ids=["unary_chain", "long_sum", "deep_lists"],
)
def test_deeply_nested_or_huge_genotype_is_a_one_line_error(text, tmp_path):
    with pytest.raises(FadError) as err:
        parse_genotype(text, source="g.log")
    assert str(err.value).startswith("g.log:1: ") and "\n" not in str(err.value)
    path = tmp_path / "genotype.log"
    path.write_text(text + "\n")
    with pytest.raises(FadError, match=f"{path}:1: "):
        read_genotype_file(path)


def test_a_huge_genotype_file_is_refused_unread(tmp_path):
    path = tmp_path / "genotype.log"
    path.write_text("#" * 2_000_000)
    with pytest.raises(FadError, match=f"{path}: .*larger than"):
        read_genotype_file(path)


def test_a_deeply_nested_yaml_config_is_a_one_line_error(tmp_path):
    from fad.config import load_config

    bad = tmp_path / "deep.yaml"
    bad.write_text("SOLVER:\n  STEPS: " + "[" * 1000 + "]" * 1000 + "\n")
    with pytest.raises(FadError, match=f"{bad}: invalid YAML: nested too deeply"):
        load_config(bad)


@pytest.mark.parametrize(
    "argv",
    [["--seeds=-1"], ["--seeds", "0,99999999999"], ["--seed", "-3"], ["SOLVER.GAMMA", "-1"]],
    ids=["negative_seeds", "huge_seed", "negative_seed", "bad_override"],
)
def test_demo_checks_its_seeds_and_overrides_before_stage_0(
    argv, tmp_path, capsys, monkeypatch, no_heavy_work
):
    monkeypatch.setattr(
        "fad.demo.run_training", lambda *a, **k: pytest.fail("stage 0 started before the checks")
    )
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fad demo: error: ") and err.count("\n") == 1
    assert "SEED must be in [0, " in err or "SOLVER.GAMMA must be > 0" in err
    assert not out.exists()

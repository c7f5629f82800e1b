from pathlib import Path

import pytest

from fad.cli import main
from fad.config import load_config
from fad.errors import FadError

ORIGINAL = Path(__file__).resolve().parents[3] / "shared" / "reference" / "original-configs"
REPO_CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.skipif(not ORIGINAL.is_dir(), reason="../shared/reference is absent")
@pytest.mark.parametrize("path", sorted(ORIGINAL.glob("*.yaml")) if ORIGINAL.is_dir() else [])
def test_original_fad_configs_load(path):
    cfg = load_config(path)
    assert cfg.MODEL.FCOS.CENTER_SAMPLING_RADIUS == 1.5
    assert cfg.MODEL.FCOS.IOU_LOSS_TYPE == "giou"
    assert isinstance(cfg.DATASETS.TRAIN, tuple) and cfg.DATASETS.TRAIN
    assert cfg.MODEL.FAD.NUM_CHANNELS_BOX in (96, 128)


@pytest.mark.parametrize("path", sorted(REPO_CONFIGS.glob("**/*.yaml")))
def test_shipped_configs_load(path):
    assert load_config(path).DATASETS.TRAIN


def test_tuple_strings_and_overrides_are_literals():
    cfg = load_config(
        None,
        [
            "INPUT.MIN_SIZE_RANGE_TRAIN",
            "(640, 800)",
            "SOLVER.BASE_LR",
            "0.02",
            "DATASETS.TRAIN",
            "('a', 'b')",
            "SOLVER.MAX_ITER",
            "10",
        ],
    )
    assert cfg.INPUT.MIN_SIZE_RANGE_TRAIN == (640, 800)
    assert cfg.SOLVER.BASE_LR == 0.02
    assert cfg.DATASETS.TRAIN == ("a", "b")
    assert cfg.SOLVER.MAX_ITER == 10


def test_unknown_key_in_file_names_file_line_and_suggestion(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("MODEL:\n  FCOS:\n    NUM_CLASES: 3\n")
    with pytest.raises(FadError) as err:
        load_config(f)
    message = str(err.value)
    assert f"{f}:3" in message and "MODEL.FCOS.NUM_CLASES" in message
    assert "did you mean MODEL.FCOS.NUM_CLASSES" in message


@pytest.mark.parametrize(
    "opts, fragment",
    [
        (["SOLVER.MAX_ITER", "-5"], "SOLVER.MAX_ITER"),
        (["SOLVER.MAX_ITER", "abc"], "SOLVER.MAX_ITER must be an integer"),
        (["SOLVER.MAX_ITER", "2.5"], "SOLVER.MAX_ITER must be an integer"),
        (["MODEL.FAD.SEARCH", "1"], "MODEL.FAD.SEARCH must be True or False"),
        (["SOLVER.WARMUP_METHOD", "cosine"], "SOLVER.WARMUP_METHOD"),
        (["SOLVER.STEPS", "(30, 10)"], "SOLVER.STEPS"),
        (["MODEL.FAD.NUM_CHANNELS_BOX", "100"], "MODEL.FAD.NUM_CHANNELS_BOX"),
        (["MODEL.BACKBONE.CONV_BODY", "VGG-16"], "MODEL.BACKBONE.CONV_BODY"),
        (["MODEL.COMPILE_MODE", "graphs"], "MODEL.COMPILE_MODE must be one of"),
        (["MODEL", "3"], "MODEL is a section"),
        (["SOLVER.MAX_ITER"], "KEY VALUE pairs"),
    ],
)
def test_bad_values_are_one_line_errors(opts, fragment):
    with pytest.raises(FadError) as err:
        load_config(None, opts)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_batch_must_divide_by_processes():
    with pytest.raises(FadError, match="divisible by the number of processes"):
        load_config(None, ["SOLVER.IMS_PER_BATCH", "6"], world_size=4)


def test_invalid_yaml_reports_line(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("MODEL:\n  WEIGHT: [unclosed\n")
    with pytest.raises(FadError, match=r"bad.yaml:\d+: invalid YAML"):
        load_config(f)


def test_yaml_python_tags_are_refused(tmp_path):
    f = tmp_path / "evil.yaml"
    f.write_text("OUTPUT_DIR: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(FadError):
        load_config(f)


def test_fad_config_cli_prints_merged_config(capsys):
    assert main(["config", "SOLVER.MAX_ITER", "123"]) == 0
    assert "MAX_ITER: 123" in capsys.readouterr().out


def test_fad_config_cli_error_is_nonzero_and_one_line(capsys):
    assert main(["config", "SOLVER.MAX_ITRE", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "did you mean SOLVER.MAX_ITER" in err and len(err.splitlines()) == 1


def test_a_saved_config_loads_back_to_the_same_dump(tmp_path):
    cfg = load_config(None)
    (tmp_path / "config.yaml").write_text(cfg.dump(), encoding="utf-8")
    assert "&id" not in cfg.dump()  # no YAML aliases: keys that share a default stay apart
    assert load_config(tmp_path / "config.yaml").dump() == cfg.dump()

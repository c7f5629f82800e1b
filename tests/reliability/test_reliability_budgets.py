"""Promise 16 (budgets): configs are bounded in bytes, nodes and depth, read only as regular UTF-8
files; absurd sizes and rates are one-line errors before any work."""

from __future__ import annotations

import os
import threading

import pytest

from fad.cli import main
from fad.config import load_config
from fad.errors import FadError

ALIAS_BOMB = """\
a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
DATASETS:
  TRAIN: [*g, *g, *g, *g, *g, *g, *g, *g, *g]
"""


def _one_line_error(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert len(err) < 600  # never the expanded value
    return err


def test_a_yaml_alias_bomb_stops_at_once_with_a_short_message(tmp_path, capsys):
    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB)
    assert len(ALIAS_BOMB) < 600
    err = _one_line_error(["config", "--config-file", str(path)], capsys)
    assert f"{path}:" in err and "more than 100000 YAML nodes" in err


def test_a_huge_config_file_is_refused_unread(tmp_path, capsys):
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as f:
        f.truncate(200 * 2**20)  # 200 MB, sparse
    err = _one_line_error(["config", "--config-file", str(path)], capsys)
    assert "is 200.0 MiB, more than the 1.0 MiB allowed" in err


def test_a_named_pipe_as_config_file_is_refused_without_blocking(tmp_path, capsys):
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)
    result = {}
    worker = threading.Thread(
        target=lambda: result.setdefault("rc", main(["config", "--config-file", str(path)])),
        daemon=True,
    )
    worker.start()
    worker.join(30)
    if worker.is_alive():  # unblock the reader, then fail
        with open(path, "w") as f:
            f.write("")
        pytest.fail("reading a named pipe as the config blocked")
    assert result["rc"] == 2 and "is a named pipe, not a regular file" in capsys.readouterr().err


def test_a_config_that_is_not_utf8_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("SOLVER:\n  BASE_LR: 0.01 # r\xe9glage\n".encode("latin-1"))
    err = _one_line_error(["config", "--config-file", str(path)], capsys)
    assert f"{path}:2: not UTF-8 text (byte 0xe9" in err


@pytest.mark.parametrize(
    ("opts", "fragment"),
    [
        (["INPUT.MIN_SIZE_TRAIN", "(100000,)"], "INPUT.MIN_SIZE_TRAIN sizes must be <= 4096"),
        (["INPUT.MIN_SIZE_RANGE_TRAIN", "(10, 1000000000)"], "INPUT.MIN_SIZE_RANGE_TRAIN sizes"),
        (["INPUT.MAX_SIZE_TEST", "100000"], "INPUT.MAX_SIZE_TEST must be <= 4096"),
        (["MODEL.RETINANET.SCALES_PER_OCTAVE", "100000"], "SCALES_PER_OCTAVE must be <= 16"),
        (["MODEL.FCOS.NUM_CONVS", "100000"], "MODEL.FCOS.NUM_CONVS must be <= 32"),
        (["DATALOADER.NUM_WORKERS", "100000"], "DATALOADER.NUM_WORKERS must be <= 128"),
        (["SOLVER.GAMMA", "-1"], "SOLVER.GAMMA must be > 0"),
        (["SOLVER.WARMUP_FACTOR", "-0.5"], "SOLVER.WARMUP_FACTOR must be in (0, 1]"),
        (["SOLVER.BIAS_LR_FACTOR", "-2"], "SOLVER.BIAS_LR_FACTOR must be > 0"),
        (["MODEL.DEVICE", "quantum"], "MODEL.DEVICE must be 'cpu', 'cuda' or 'cuda:N'"),
        (["DATASETS.TRAIN", "((1, 2),)"], "DATASETS.TRAIN must hold dataset names"),
        (["DATASETS.TEST", "('',)"], "DATASETS.TEST must hold dataset names"),
        (["SOLVER.STEPS", "(" + "1," * 5000 + ")"], "characters, more than the 10000 allowed"),
    ],
    ids=[
        "min_size",
        "size_range",
        "max_size_test",
        "scales_per_octave",
        "num_convs",
        "workers",
        "gamma",
        "warmup_factor",
        "bias_lr_factor",
        "device",
        "dataset_not_a_name",
        "dataset_empty_name",
        "override_too_long",
    ],
)
def test_absurd_or_backwards_settings_are_one_line_errors(opts, fragment, capsys):
    err = _one_line_error(["config", *opts], capsys)
    assert fragment in err


def test_a_bad_value_is_shown_cut_short():
    with pytest.raises(FadError) as err:
        load_config(None, ["SOLVER.MAX_ITER", "'" + "x" * 5000 + "'"])
    assert len(str(err.value)) < 200 and "must be an integer, got 'xxxx" in str(err.value)


def test_the_stored_config_of_a_checkpoint_is_bounded_too():
    with pytest.raises(FadError, match=r"model.pth\[config\]:\d+: invalid config: more than"):
        load_config(None, text=ALIAS_BOMB, text_source="model.pth[config]")

"""Promise 7 (config): an unknown key (with "did you mean"), a wrong type or an out-of-range value
stops `fad train` / `fad eval` with a one-line error naming the key path, before any heavy work:
no OUTPUT_DIR, no log, no data read, no model built. (The resolved config saved in OUTPUT_DIR is
checked in test_reliability_bad_images.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from fad.cli import main

BAD = [
    (["SOLVER.MAX_ITR", "3"], "unknown config key SOLVER.MAX_ITR (did you mean SOLVER.MAX_ITER?)"),
    (["MODEL.FCOS.NUM_CONVS", "two"], "MODEL.FCOS.NUM_CONVS must be an integer, got 'two'"),
    (["SOLVER.MAX_ITER", "-5"], "SOLVER.MAX_ITER must be > 0, got -5"),
    (["SOLVER.BASE_LR", "0"], "SOLVER.BASE_LR must be > 0"),
    (
        ["DATALOADER.MAX_BAD_IMAGE_FRACTION", "1.5"],
        "DATALOADER.MAX_BAD_IMAGE_FRACTION must be in [0, 1), got 1.5",
    ),
    (["INPUT.MIN_SIZE_TRAIN", "('a',)"], "INPUT.MIN_SIZE_TRAIN must be a tuple of numbers"),
]


@pytest.fixture
def no_heavy_work(monkeypatch):
    """Fail the test if data is loaded or a model is built."""

    def forbidden(*args, **kwargs):
        raise AssertionError("heavy work started before the config was checked")

    for target in (
        "fad.data.build.build_datasets",
        "fad.engine.run.build_datasets",
        "fad.engine.evaluate.build_datasets",
        "fad.modeling.build.build_detector",
        "fad.engine.train.build_detector",
        "fad.engine.trained.build_detector",
    ):
        monkeypatch.setattr(target, forbidden)


def _run(command: str, shapes_config, opts, capsys) -> tuple[int, str]:
    code = main([command, "--config-file", str(shapes_config), *opts])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "eval"])
@pytest.mark.parametrize(("override", "expected"), BAD, ids=[o[0] for o, _ in BAD])
def test_bad_config_fails_in_one_line_before_any_work(
    command, override, expected, shapes_config, fast_opts, tmp_path, capsys, no_heavy_work
):
    code, err = _run(command, shapes_config, fast_opts + override, capsys)
    assert code == 2
    assert err.startswith(f"fad {command}: error: ") and err.count("\n") == 1
    assert expected in err
    assert not (tmp_path / "out").exists()  # no OUTPUT_DIR, hence no log or config written


def test_batch_not_divisible_by_processes_fails_before_joining_the_group(
    shapes_config, fast_opts, tmp_path, capsys, monkeypatch, no_heavy_work
):
    monkeypatch.setenv("WORLD_SIZE", "3")  # as torchrun would set it; IMS_PER_BATCH is 2
    code, err = _run("train", shapes_config, fast_opts, capsys)
    assert code == 2
    assert "SOLVER.IMS_PER_BATCH (2) must be divisible by the number of processes (3)" in err
    assert not (tmp_path / "out").exists()


def test_bad_key_in_the_config_file_names_file_and_line(
    shapes_config, fast_opts, tmp_path, capsys, no_heavy_work
):
    text = Path(shapes_config).read_text().replace("  MAX_ITER:", "  MAX_ITERS:")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    line = 1 + text.splitlines().index(next(x for x in text.splitlines() if "MAX_ITERS" in x))
    code, err = _run("train", bad, fast_opts, capsys)
    assert code == 2
    assert (
        f"{bad}:{line}: unknown config key SOLVER.MAX_ITERS (did you mean SOLVER.MAX_ITER?)" in err
    )
    assert not (tmp_path / "out").exists()

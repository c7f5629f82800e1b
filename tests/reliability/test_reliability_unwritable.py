"""Unwritable places are one-line errors naming the path, before any heavy work.

The tests run as root (here and in CI), and root ignores permission bits, so an unwritable folder
is simulated in two ways: a path whose parent is a regular file (the OS refuses it even for root),
and `tempfile.mkstemp` monkeypatched to raise PermissionError in one folder (as a read-only
folder would for anyone but root)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from fad.cli import main
from fad.errors import FadError
from fad.runtime.atomic import atomic_write_text


@pytest.fixture
def read_only(monkeypatch):
    """`read_only(folder)`: mkstemp in `folder` raises PermissionError from now on."""
    real = tempfile.mkstemp
    folders: list[Path] = []

    def mkstemp(*args, **kwargs):
        where = Path(kwargs.get("dir") or tempfile.gettempdir()).resolve()
        if any(where == f or f in where.parents for f in folders):
            raise PermissionError(13, "Permission denied")
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    return lambda folder: folders.append(Path(folder).resolve())


def _one_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith(f"fad {command}: error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("command", ["train", "eval", "search"])
def test_output_dir_under_a_regular_file_is_a_one_line_error(
    command, shapes_config, fast_opts, search_opts, tiny_weights, tmp_path, capsys, no_heavy_work
):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    config, opts = shapes_config, fast_opts
    if command == "search":
        config, opts = shapes_config.parent / "search_fad_R_18_FPN.yaml", search_opts
    opts = opts + ["OUTPUT_DIR", str(blocker / "out"), "MODEL.WEIGHT", str(tiny_weights)]
    assert main([command, "--config-file", str(config), *opts]) == 2
    err = _one_line(capsys, command)
    assert f"OUTPUT_DIR {blocker / 'out'}" in err and f"{blocker} is not a folder" in err


def test_read_only_output_dir_is_a_one_line_error_before_any_file(
    shapes_config, fast_opts, tmp_path, capsys, read_only, no_heavy_work
):
    out = tmp_path / "out"
    out.mkdir()
    read_only(out)
    assert main(["train", "--config-file", str(shapes_config), *fast_opts]) == 2
    err = _one_line(capsys, "train")
    assert f"cannot write in OUTPUT_DIR {out}: Permission denied" in err
    assert list(out.iterdir()) == []


def test_read_only_parent_of_a_new_output_dir(
    shapes_config, fast_opts, tmp_path, capsys, read_only, no_heavy_work
):
    parent = tmp_path / "runs"
    parent.mkdir()
    read_only(parent)
    opts = fast_opts + ["OUTPUT_DIR", str(parent / "new" / "out")]
    assert main(["train", "--config-file", str(shapes_config), *opts]) == 2
    assert f"cannot write in OUTPUT_DIR {parent / 'new' / 'out'}" in _one_line(capsys, "train")
    assert list(parent.iterdir()) == []


def test_eval_folder_that_cannot_be_created(
    shapes_config, fast_opts, tiny_weights, tmp_path, capsys, no_heavy_work
):
    out = tmp_path / "out"
    out.mkdir()
    (out / "inference").write_text("a file where the eval folder goes")
    opts = fast_opts + ["MODEL.WEIGHT", str(tiny_weights)]
    assert main(["eval", "--config-file", str(shapes_config), *opts]) == 2
    assert f"{out / 'inference'} is not a folder" in _one_line(capsys, "eval")


@pytest.mark.parametrize("how", ["under_a_file", "read_only"])
def test_predict_out_that_cannot_be_written(
    how, tiny_weights, tiny_shapes, tmp_path, capsys, read_only, monkeypatch
):
    monkeypatch.setattr(
        "fad.engine.trained.build_detector",
        lambda *a, **k: pytest.fail("model built before --out was checked"),
    )
    if how == "under_a_file":
        (tmp_path / "a_file").write_text("x")
        out = tmp_path / "a_file" / "preds"
    else:
        out = tmp_path / "preds"
        out.mkdir()
        read_only(out)
    val = Path(tiny_shapes["root"]) / "val"
    assert main(["predict", str(tiny_weights), str(val), "--out", str(out)]) == 2
    assert f"--out {out}" in _one_line(capsys, "predict")


def test_atomic_writer_turns_a_failed_temp_file_into_one_line_error(tmp_path, read_only):
    read_only(tmp_path)
    with pytest.raises(FadError) as err:
        atomic_write_text(tmp_path / "x.txt", "data")
    assert str(err.value) == f"could not write {tmp_path / 'x.txt'}: Permission denied"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(FadError, match=f"could not write {blocker / 'sub' / 'x.txt'}: "):
        atomic_write_text(blocker / "sub" / "x.txt", "data")


def test_export_into_a_read_only_folder_is_refused_before_any_work(
    tiny_weights, tmp_path, capsys, read_only, monkeypatch
):
    monkeypatch.setattr(
        "fad.engine.export.TrainedModel.read",
        lambda *a, **k: pytest.fail("the weights were read before --out was checked"),
    )
    folder = tmp_path / "exports"
    folder.mkdir()
    read_only(folder)
    out = folder / "model.pt"
    assert main(["export", str(tiny_weights), "--format", "torchscript", "--out", str(out)]) == 2
    assert f"the folder of --out {folder}" in _one_line(capsys, "export")
    assert list(folder.iterdir()) == []

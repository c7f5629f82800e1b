"""`fad predict` never writes over an input (an `--out` that is the images' folder, images that
share a stem), refuses a bad threshold, skips a named pipe without blocking, and never renames a
picture the disk did not fully take into place."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from fad.cli import main
from fad.runtime import atomic


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture
def images(tiny_shapes, tmp_path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for src in sorted((Path(tiny_shapes["root"]) / "val").glob("*.jpg"))[:3]:
        shutil.copy(src, folder / src.name)
    return folder


def _predict(weights, source, out, *extra) -> int:
    return main(["predict", str(weights), str(source), "--out", str(out), *extra])


def test_out_equal_to_the_input_folder_is_refused_and_the_images_kept(tiny_weights, images, capsys):
    before = _hashes(images)
    for out in (images, images / "." / ""):
        assert _predict(tiny_weights, images, out) == 2
        err = capsys.readouterr().err
        assert "is the folder of the images: their drawn copies would replace them" in err
        assert err.count("\n") == 1
    one = next(iter(images.iterdir()))
    assert _predict(tiny_weights, one, images) == 2  # a single image, --out its own folder
    assert _hashes(images) == before


def test_images_that_share_a_stem_each_get_their_own_picture(tiny_weights, images, tmp_path):
    first = sorted(images.iterdir())[0]
    Image.open(first).save(images / f"{first.stem}.png")
    before = _hashes(images)
    out = tmp_path / "preds"
    assert _predict(tiny_weights, images, out) == 0
    names = sorted(p.name for p in out.glob("*.jpg"))
    assert f"{first.name}.jpg" in names and f"{first.stem}.png.jpg" in names
    assert len(names) == len(before)
    assert _hashes(images) == before
    result = json.loads((out / "predictions.json").read_text())
    assert result["predicted"] == len(before)


@pytest.mark.parametrize("threshold", ["nan", "-1", "2", "inf"])
def test_a_score_threshold_outside_0_1_is_a_one_line_error(
    threshold, tiny_weights, images, tmp_path, capsys
):
    out = tmp_path / "preds"
    assert _predict(tiny_weights, images, out, f"--score-threshold={threshold}") == 2
    err = capsys.readouterr().err
    assert f"--score-threshold {float(threshold)}: must be a number in [0, 1]" in err
    assert not out.exists()


@pytest.mark.slow
def test_a_named_pipe_among_the_images_is_skipped_without_blocking(tiny_weights, images, tmp_path):
    os.mkfifo(images / "camera.jpg")
    out = tmp_path / "preds"
    command = [sys.executable, "-m", "fad", "predict", str(tiny_weights), str(images)]
    done = subprocess.run(
        [*command, "--out", str(out)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    result = json.loads((out / "predictions.json").read_text())
    assert result["predicted"] == 3
    (skipped,) = result["skipped"]
    assert "camera.jpg is a named pipe, not a regular file" in skipped["error"]


def test_a_picture_the_disk_did_not_fully_take_is_never_renamed_into_place(
    tiny_weights, images, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "preds"
    assert _predict(tiny_weights, images, out) == 0
    before = _hashes(out)
    real_write = os.write

    def full_disk(fd, data):  # the tail is lost and the system does not say so
        real_write(fd, bytes(data[: len(data) // 2]))
        return len(data)

    monkeypatch.setattr(atomic.os, "write", full_disk)
    assert _predict(tiny_weights, images, out) == 2
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert "bytes reached the disk (a full disk?)" in err and err.count("\n") == 1
    assert _hashes(out) == before  # every earlier picture and the json intact, no temp file

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from fad.cli import main


def test_predict_folder_writes_pictures_and_json(tiny_trained, tiny_shapes, tmp_path):
    val = Path(tiny_shapes["root"]) / "val"
    out = tmp_path / "pred"
    assert (
        main(["predict", str(tiny_trained), str(val), "--out", str(out), "--score-threshold", "0"])
        == 0
    )
    sources = sorted(val.glob("*.jpg"))
    pictures = sorted(out.glob("*.jpg"))
    assert [p.name for p in pictures] == [p.name for p in sources]
    for src, pic in zip(sources, pictures):
        assert Image.open(src).size == Image.open(pic).size
    records = json.loads((out / "predictions.json").read_text())["detections"]
    assert records, "an untrained detector with threshold 0 still returns boxes"
    names = {"circle", "square", "triangle", "star", "cross"}
    for r in records:
        assert r["category_name"] in names and r["category_id"] in (1, 3, 5, 7, 9)
        assert len(r["bbox"]) == 4 and r["bbox"][2] >= 0 and r["bbox"][3] >= 0
        assert Path(r["file_name"]).parent == val


def test_predict_on_a_single_image_and_bad_source(tiny_trained, tiny_shapes, tmp_path, capsys):
    image = sorted((Path(tiny_shapes["root"]) / "val").glob("*.jpg"))[0]
    assert main(["predict", str(tiny_trained), str(image), "--out", str(tmp_path / "one")]) == 0
    assert (tmp_path / "one" / image.name).is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", str(tiny_trained), str(empty), "--out", str(tmp_path / "x")]) == 2
    assert "no images" in capsys.readouterr().err


def test_predict_corrupt_image_is_a_clear_error(tiny_trained, tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    assert main(["predict", str(tiny_trained), str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "bad.jpg" in capsys.readouterr().err


@pytest.mark.parametrize("weights", ["/no/such.pth"])
def test_predict_missing_weights(weights, tmp_path, capsys):
    assert main(["predict", weights, str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "not found" in capsys.readouterr().err

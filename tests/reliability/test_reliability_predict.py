"""`fad predict` never loses its results to one bad image: the bad image is reported and skipped
(counted in predictions.json and in the summary line), every good image gets its picture and its
entries, and predictions.json is written atomically."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from fad.cli import main
from fad.engine.predict import detect_images


@pytest.fixture
def mixed_folder(tiny_shapes, tmp_path) -> tuple[Path, list[str], list[str]]:
    """Six images: four good ones, a truncated copy among them and an HTML page saved as .jpg."""
    folder = tmp_path / "images"
    folder.mkdir()
    sources = sorted((Path(tiny_shapes["root"]) / "val").glob("*.jpg"))[:4]
    for src in sources:
        shutil.copy(src, folder / src.name)
    data = sources[0].read_bytes()
    (folder / sources[0].name.replace(".jpg", "b.jpg")).write_bytes(data[: len(data) // 3])
    (folder / "zz_page.jpg").write_bytes(b"<html>404 not found</html>" * 20)
    bad = [sources[0].name.replace(".jpg", "b.jpg"), "zz_page.jpg"]
    return folder, [s.name for s in sources], bad


def test_bad_images_are_skipped_and_counted_and_good_ones_all_kept(
    tiny_weights, mixed_folder, tmp_path, capsys
):
    folder, good, bad = mixed_folder
    out = tmp_path / "preds"
    args = ["predict", str(tiny_weights), str(folder), "--out", str(out), "--score-threshold", "0"]
    assert main([*args, "MODEL.FCOS.INFERENCE_TH", "0.0"]) == 0  # an untrained net finds boxes
    assert sorted(p.name for p in out.glob("*.jpg")) == sorted(good)
    result = json.loads((out / "predictions.json").read_text())
    assert result["images"] == len(good) + len(bad)
    assert result["predicted"] == len(good)
    assert sorted(Path(s["file_name"]).name for s in result["skipped"]) == sorted(bad)
    assert all(str(folder) in s["error"] for s in result["skipped"])
    assert {Path(r["file_name"]).name for r in result["detections"]} == set(good)
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    captured = capsys.readouterr()
    assert f"{len(good)} of {len(good) + len(bad)} images predicted, {len(bad)} skipped" in (
        captured.out + captured.err
    )


def test_detect_images_runs_any_detector_callable_over_paths(mixed_folder):
    folder, good, bad = mixed_folder
    seen_batches = []

    def detector(images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        seen_batches.append(len(images))
        return [
            {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0)}
            for _ in images
        ]

    paths = sorted(folder.iterdir())
    outcomes = list(detect_images(detector, paths, batch_size=4))
    assert [o.path for o in outcomes] == paths  # every image, in order
    assert sorted(o.path.name for o in outcomes if o.error) == sorted(bad)
    assert all((o.picture is None) == bool(o.error) for o in outcomes)
    assert sum(seen_batches) == len(good)

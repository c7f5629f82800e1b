"""The shapes dataset: deterministic, tight boxes, wide size range, atomic generation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from fad.data import shapes
from fad.data.shapes import ensure_shapes, generate_shapes, render_sample, sample_rng
from fad.errors import FadError

SMALL = {"num_train": 4, "num_val": 2, "min_size": 40, "max_size": 56}


def _json(root, split="train") -> dict:
    return json.loads((root / "annotations" / f"instances_{split}.json").read_text())


def _blur(image: np.ndarray) -> np.ndarray:
    """Means of 4x4 blocks (JPEG keeps these, not the per-pixel noise)."""
    h, w = image.shape[0] // 4 * 4, image.shape[1] // 4 * 4
    return image[:h, :w].astype(float).reshape(h // 4, 4, w // 4, 4, 3).mean(axis=(1, 3))


def test_layout_and_coco_fields(tmp_path):
    out = tmp_path / "shapes"
    generate_shapes(out, seed=1, **SMALL)
    for split, count in (("train", 4), ("val", 2)):
        data = _json(out, split)
        assert len(data["images"]) == count
        assert sorted(p.name for p in (out / split).iterdir()) == [
            img["file_name"] for img in data["images"]
        ]
        assert [c["id"] for c in data["categories"]] == [1, 3, 5, 7, 9]
        for img in data["images"]:
            assert 40 <= img["width"] <= 56 and 40 <= img["height"] <= 56
            with Image.open(out / split / img["file_name"]) as stored:
                assert stored.size == (img["width"], img["height"])
        ann_images = {a["image_id"] for a in data["annotations"]}
        assert ann_images == {img["id"] for img in data["images"]}  # every image has a box
        for ann in data["annotations"]:
            assert ann["iscrowd"] == 0 and ann["area"] > 0
            assert ann["category_id"] in {1, 3, 5, 7, 9}
    assert [p.name for p in tmp_path.iterdir()] == ["shapes"]  # no temporary folder left


def test_same_seed_gives_identical_files_and_other_seed_differs(tmp_path):
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        generate_shapes(tmp_path / name, seed=seed, **SMALL)
    files = ["annotations/instances_train.json", "annotations/instances_val.json", "val/000001.jpg"]
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    assert (tmp_path / "a" / files[0]).read_bytes() != (tmp_path / "c" / files[0]).read_bytes()


def test_boxes_tightly_fit_the_drawn_pixels(tmp_path):
    out = tmp_path / "shapes"
    generate_shapes(out, seed=2, num_train=12, num_val=1, min_size=64, max_size=96)
    data = _json(out)
    unoccluded = 0
    for img in data["images"]:
        index = img["id"] - 1
        sample = render_sample(2, "train", index, min_size=64, max_size=96)
        rng = sample_rng(2, "train", index)
        width, height = (int(v) for v in rng.integers(64, 97, 2))
        background = shapes._background(rng, width, height)
        changed = (sample.image != background).any(axis=2)  # every pixel a shape was drawn on
        with Image.open(out / "train" / img["file_name"]) as stored:
            saved = np.asarray(stored)
        assert np.abs(_blur(saved) - _blur(sample.image)).mean() < 4  # the JPEG holds this
        anns = [a for a in data["annotations"] if a["image_id"] == img["id"]]
        assert [a["bbox"] for a in anns] == [
            [x0, y0, x1 - x0, y1 - y0] for x0, y0, x1, y1 in (o.box for o in sample.objects)
        ]
        for obj in sample.objects:
            assert obj.occluded_fraction <= 0.7
            assert changed[obj.visible].all()
            if obj.occluded_fraction > 0:
                continue
            unoccluded += 1
            x0, y0, x1, y1 = obj.box
            inside = obj.visible[y0:y1, x0:x1]
            assert obj.visible.sum() == inside.sum()  # nothing drawn outside the box
            # tight: the shape touches all four sides of its box
            assert inside[0].any() and inside[-1].any()
            assert inside[:, 0].any() and inside[:, -1].any()
    assert unoccluded >= 12


def test_object_sizes_cover_all_fpn_levels(tmp_path):
    out = tmp_path / "shapes"
    generate_shapes(out, seed=0, num_train=40, num_val=1)
    boxes = np.array([a["bbox"] for a in _json(out)["annotations"]], dtype=float)
    longest = boxes[:, 2:].max(axis=1)
    counts = np.histogram(longest, bins=[0, 32, 64, 128, 256, 1000])[0]
    assert (counts[:4] > 0).all(), counts
    assert longest.min() <= 16 and longest.max() >= 200


def test_shape_masks_have_the_requested_extent():
    for kind in ("circle", "square", "triangle", "star", "cross"):
        mask = shapes._shape_mask(kind, 100, 100, 50.0, 50.0, 30.0, 0.3)
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        assert mask.sum() > 300
        assert rows[0] >= 19 and rows[-1] <= 81 and cols[0] >= 19 and cols[-1] <= 81


def test_refuses_a_non_empty_output_and_bad_arguments(tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file.txt").write_text("x")
    with pytest.raises(FadError, match="busy"):
        generate_shapes(tmp_path / "busy", **SMALL)
    with pytest.raises(FadError, match="min_size"):
        generate_shapes(tmp_path / "x", num_train=1, num_val=1, min_size=64, max_size=32)
    with pytest.raises(FadError, match="train"):
        generate_shapes(tmp_path / "x", num_train=0, num_val=1)


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    real = shapes._write_split

    def interrupted(out, split, *args):
        if split == "val":
            raise KeyboardInterrupt
        real(out, split, *args)

    monkeypatch.setattr(shapes, "_write_split", interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate_shapes(tmp_path / "shapes", **SMALL)
    assert list(tmp_path.iterdir()) == []


def test_ensure_shapes_reuses_and_survives_a_concurrent_winner(tmp_path, monkeypatch):
    real = shapes._write_split
    out = tmp_path / "shapes"

    def small_then_competitor(tmp, split, count, seed, min_size, max_size):
        real(tmp, split, 2, seed, 40, 48)
        if split == "val":  # another process publishes first
            (out / "annotations").mkdir(parents=True)
            for name in ("train", "val"):
                (out / "annotations" / f"instances_{name}.json").write_text("{}")

    monkeypatch.setattr(shapes, "_write_split", small_then_competitor)
    assert ensure_shapes(tmp_path) == out
    assert (out / "annotations" / "instances_val.json").read_text() == "{}"  # winner kept
    assert [p.name for p in tmp_path.iterdir()] == ["shapes"]  # our copy discarded
    monkeypatch.setattr(shapes, "_write_split", None)  # would fail if called again
    assert ensure_shapes(tmp_path) == out

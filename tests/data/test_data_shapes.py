"""The shapes dataset: levels, determinism, valid COCO, tight boxes, atomic generation."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from fad.data import shapes
from fad.data.shapes import (
    LEVELS,
    ensure_shapes,
    generate_shapes,
    get_level,
    render_sample,
    sample_rng,
    stored_level,
)
from fad.errors import FadError

SMALL = {"num_train": 4, "num_val": 2, "min_size": 40, "max_size": 56}
# A tiny hard set as written by fad before levels existed (seed 3, 3 train / 2 val, 64-96 px):
# sha256 of each json without `info`, and of the rendered pixels of all five images.
HARD_PIN = {
    "train": "a7dd7430e6334e5781cbd803d87dfe9778003aed1f94d28909ba2d4d11c201c7",
    "val": "1816243c798168da89ce1901e45fd2194b5c58e6822acb0b9184908b991edfd8",
    "pixels": "c8dd48dc05592e0a603369246e4b9ea208e8a4f7334ef5f5bb2409c4c4da7841",
}


def _json(root, split="train") -> dict:
    return json.loads((root / "annotations" / f"instances_{split}.json").read_text())


def _blur(image: np.ndarray) -> np.ndarray:
    """Means of 4x4 blocks (JPEG keeps these, not the per-pixel noise)."""
    h, w = image.shape[0] // 4 * 4, image.shape[1] // 4 * 4
    return image[:h, :w].astype(float).reshape(h // 4, 4, w // 4, 4, 3).mean(axis=(1, 3))


@pytest.mark.parametrize("level", list(LEVELS))
def test_layout_and_valid_coco(tmp_path, level):
    out = tmp_path / "shapes"
    generate_shapes(out, level=level, seed=1, **SMALL)
    category_ids = [i for i, _ in LEVELS[level].categories]
    for split, count in (("train", 4), ("val", 2)):
        data = _json(out, split)
        assert data["info"]["level"] == level
        assert stored_level(out / "annotations" / f"instances_{split}.json") == (
            level,
            str(LEVELS[level].version),
        )
        coco = COCO(str(out / "annotations" / f"instances_{split}.json"))
        assert coco.getCatIds() == category_ids and len(coco.getImgIds()) == count
        assert sorted(p.name for p in (out / split).iterdir()) == [
            img["file_name"] for img in data["images"]
        ]
        for img in data["images"]:
            assert 40 <= img["width"] <= 56 and 40 <= img["height"] <= 56
            with Image.open(out / split / img["file_name"]) as stored:
                assert stored.size == (img["width"], img["height"])
        images = {img["id"]: img for img in data["images"]}
        assert {a["image_id"] for a in data["annotations"]} == set(images)  # every image has one
        for ann in data["annotations"]:
            x, y, w, h = ann["bbox"]
            img = images[ann["image_id"]]
            assert 0 <= x and 0 <= y and x + w <= img["width"] and y + h <= img["height"]
            assert w > 0 and h > 0 and ann["iscrowd"] == 0 and ann["area"] > 0
            assert ann["category_id"] in category_ids
    assert [p.name for p in tmp_path.iterdir()] == ["shapes"]  # no temporary folder left


@pytest.mark.parametrize("level", list(LEVELS))
def test_same_arguments_give_identical_files_and_other_seed_differs(tmp_path, level):
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        generate_shapes(tmp_path / name, level=level, seed=seed, **SMALL)
    files = [p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()]
    assert len(files) == 8
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    json_file = "annotations/instances_train.json"
    assert (tmp_path / "a" / json_file).read_bytes() != (tmp_path / "c" / json_file).read_bytes()


def test_levels_differ_for_the_same_seed(tmp_path):
    for level in LEVELS:
        generate_shapes(tmp_path / level, level=level, seed=7, **SMALL)
    assert _json(tmp_path / "easy")["annotations"] != _json(tmp_path / "hard")["annotations"]


def test_hard_level_reproduces_the_set_of_earlier_versions(tmp_path):
    generate_shapes(tmp_path / "s", level="hard", seed=3, num_train=3, num_val=2, min_size=64,
                    max_size=96)  # fmt: skip
    for split in ("train", "val"):
        data = _json(tmp_path / "s", split)
        del data["info"]  # now records the level
        text = json.dumps(data, separators=(",", ":")).encode()
        assert hashlib.sha256(text).hexdigest() == HARD_PIN[split]
    pixels = hashlib.sha256()
    for split, count in (("train", 3), ("val", 2)):
        for index in range(count):
            sample = render_sample(3, split, index, level="hard", min_size=64, max_size=96)
            pixels.update(sample.image.tobytes())
    assert pixels.hexdigest() == HARD_PIN["pixels"]


@pytest.mark.parametrize("level", list(LEVELS))
def test_boxes_tightly_fit_the_drawn_pixels(tmp_path, level):
    out = tmp_path / "shapes"
    generate_shapes(out, level=level, seed=2, num_train=12, num_val=1, min_size=64, max_size=96)
    data = _json(out)
    unoccluded = 0
    for img in data["images"]:
        index = img["id"] - 1
        sample = render_sample(2, "train", index, level=level, min_size=64, max_size=96)
        rng = sample_rng(2, "train", index)
        width, height = (int(v) for v in rng.integers(64, 97, 2))
        background = shapes._background(rng, width, height, LEVELS[level])
        changed = (sample.image != background).any(axis=2)  # every pixel a shape was drawn on
        with Image.open(out / "train" / img["file_name"]) as stored:
            saved = np.asarray(stored)
        assert np.abs(_blur(saved) - _blur(sample.image)).mean() < 4  # the JPEG holds this
        anns = [a for a in data["annotations"] if a["image_id"] == img["id"]]
        assert [a["bbox"] for a in anns] == [
            [x0, y0, x1 - x0, y1 - y0] for x0, y0, x1, y1 in (o.box for o in sample.objects)
        ]
        for obj in sample.objects:
            assert obj.occluded_fraction <= LEVELS[level].max_occluded_fraction
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


def test_hard_object_sizes_cover_all_fpn_levels(tmp_path):
    out = tmp_path / "shapes"
    generate_shapes(out, level="hard", seed=0, num_train=40, num_val=1)
    boxes = np.array([a["bbox"] for a in _json(out)["annotations"]], dtype=float)
    longest = boxes[:, 2:].max(axis=1)
    counts = np.histogram(longest, bins=[0, 32, 64, 128, 256, 1000])[0]
    assert (counts[:4] > 0).all(), counts
    assert longest.min() <= 16 and longest.max() >= 200


def test_easy_objects_are_large_few_and_unoccluded():
    counts = []
    for index in range(20):
        sample = render_sample(0, "train", index, level="easy")
        short = min(sample.image.shape[:2])
        counts.append(len(sample.objects))
        for obj in sample.objects:
            x0, y0, x1, y1 = obj.box
            assert min(x1 - x0, y1 - y0) >= 0.15 * short  # >= 19 px at a 128 px short side
            assert max(x1 - x0, y1 - y0) <= 0.6 * short + 1
            assert obj.occluded_fraction == 0
    assert 1 <= min(counts) and max(counts) <= 4 and sum(counts) >= 30


def test_levels_declare_non_contiguous_category_ids():
    assert [i for i, _ in LEVELS["hard"].categories] == [1, 3, 5, 7, 9]
    for level in LEVELS.values():
        ids = [i for i, _ in level.categories]
        assert len(ids) >= 3 and ids != list(range(1, len(ids) + 1))
        assert {kind for _, kind in level.categories} <= {kind for _, kind in shapes.CATEGORIES}


def test_shape_masks_have_the_requested_extent():
    for kind in ("circle", "square", "triangle", "star", "cross"):
        mask = shapes._shape_mask(kind, 100, 100, 50.0, 50.0, 30.0, 0.3)
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        assert mask.sum() > 300
        assert rows[0] >= 19 and rows[-1] <= 81 and cols[0] >= 19 and cols[-1] <= 81


def test_refuses_a_non_empty_output_bad_arguments_and_unknown_levels(tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file.txt").write_text("x")
    with pytest.raises(FadError, match="busy"):
        generate_shapes(tmp_path / "busy", **SMALL)
    with pytest.raises(FadError, match="min_size"):
        generate_shapes(tmp_path / "x", num_train=1, num_val=1, min_size=64, max_size=32)
    with pytest.raises(FadError, match="train"):
        generate_shapes(tmp_path / "x", num_train=0, num_val=1)
    with pytest.raises(FadError, match="unknown level 'medium'; levels: easy, hard"):
        get_level("medium")


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


def _small_sets(monkeypatch, after=None) -> None:
    """Make `ensure_shapes` write 2-image sets of 40-48 px; call `after(tmp)` after each split."""
    real = shapes._write_split

    def small(tmp, split, count, seed, level, min_size, max_size):
        real(tmp, split, 2, seed, level, 40, 48)
        if after is not None:
            after(split)

    monkeypatch.setattr(shapes, "_write_split", small)


def test_ensure_shapes_writes_each_level_to_its_own_folder(tmp_path, monkeypatch):
    _small_sets(monkeypatch)
    assert ensure_shapes(tmp_path) == tmp_path / "shapes_easy"
    assert ensure_shapes(tmp_path, "hard") == tmp_path / "shapes_hard"
    for level in LEVELS:
        assert _json(tmp_path / f"shapes_{level}", "val")["info"]["level"] == level
    monkeypatch.setattr(shapes, "_write_split", None)  # would fail if called again
    assert ensure_shapes(tmp_path, "easy") == tmp_path / "shapes_easy"


def test_ensure_shapes_reuses_and_survives_a_concurrent_winner(tmp_path, monkeypatch):
    out = tmp_path / "shapes_easy"
    info = {"level": "easy", "version": str(LEVELS["easy"].version), "by": "winner"}

    def competitor(split):
        if split == "val":  # another process publishes first
            (out / "annotations").mkdir(parents=True)
            for name in ("train", "val"):
                (out / "annotations" / f"instances_{name}.json").write_text(
                    json.dumps({"info": info})
                )

    _small_sets(monkeypatch, after=competitor)
    assert ensure_shapes(tmp_path) == out
    assert _json(out, "val")["info"]["by"] == "winner"  # the winner's set kept
    assert [p.name for p in tmp_path.iterdir()] == ["shapes_easy"]  # our copy discarded
    monkeypatch.setattr(shapes, "_write_split", None)  # would fail if called again
    assert ensure_shapes(tmp_path) == out


def test_ensure_shapes_refuses_another_level_or_version(tmp_path, monkeypatch):
    _small_sets(monkeypatch)
    generate_shapes(tmp_path / "shapes_easy", level="hard", **SMALL)
    with pytest.raises(
        FadError, match=r"shapes_easy holds a set of level 'hard' version 1, not level 'easy' "
    ):
        ensure_shapes(tmp_path, "easy")
    ensure_shapes(tmp_path, "hard")
    bumped = dataclasses.replace(get_level("hard"), version=2)
    with pytest.raises(
        FadError, match="shapes_hard .*not level 'hard' version 2; remove it and it is generated"
    ):
        ensure_shapes(tmp_path, bumped)
    ann_file = tmp_path / "shapes_hard" / "annotations" / "instances_val.json"
    data = json.loads(ann_file.read_text())
    data["info"] = {"description": "fad shapes, split val, seed 0", "version": "1"}  # as before
    ann_file.write_text(json.dumps(data))
    with pytest.raises(
        FadError, match=r"shapes_hard holds a set of no recorded level \(older fad\)"
    ):
        ensure_shapes(tmp_path, "hard")
    ann_file.write_text("[1, 2")
    with pytest.raises(FadError, match="cannot read .*instances_val.json"):
        ensure_shapes(tmp_path, "hard")

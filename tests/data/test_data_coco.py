"""COCODetection: what is kept, clipped, dropped and counted; malformed json; image errors."""

from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools.cocoeval import COCOeval

from fad.data.coco import COCODetection
from fad.errors import FadError


def _write_fixture(root) -> tuple:
    """Three 40x30 images; image 10 holds one box of every kind, 20 none, 30 only a crowd box."""
    img_dir = root / "images"
    img_dir.mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        Image.new("RGB", (40, 30), (90, 90, 90)).save(img_dir / name)
    anns = [
        (1, 10, 5, [2, 3, 10, 8], 0),  # good -> label 2 (category 5 is the 2nd id)
        (2, 10, 2, [0, 0, 40, 30], 1),  # crowd
        (3, 10, 2, [5, 5, 0.5, 10], 0),  # too thin
        (4, 10, 2, [math.nan, 1, 4, 4], 0),  # NaN
        (5, 10, 2, [30, 20, 20, 20], 0),  # partly outside -> clipped to [30, 20, 40, 30]
        (6, 10, 2, [50, 40, 5, 5], 0),  # entirely outside
        (7, 10, 4, [1, 1, 5, 5], 0),  # unknown category
        (1, 10, 2, [1, 1, 5, 5], 0),  # duplicate id
        (8, 10, 2, [1, 1, -3, 5], 0),  # negative width
        (9, 30, 2, [1, 1, 10, 10], 1),  # crowd only
    ]
    data = {
        "images": [
            {"id": 30, "file_name": "c.jpg", "width": 40, "height": 30},
            {"id": 10, "file_name": "a.jpg", "width": 40, "height": 30},
            {"id": 20, "file_name": "b.jpg", "width": 40, "height": 30},
        ],
        "annotations": [
            {"id": i, "image_id": im, "category_id": c, "bbox": b, "iscrowd": crowd}
            for i, im, c, b, crowd in anns
        ],
        "categories": [{"id": 5, "name": "cat"}, {"id": 2, "name": "dog"}],
    }
    ann_file = root / "ann.json"
    ann_file.write_text(json.dumps(data))
    return img_dir, ann_file


def test_training_targets_keep_clip_drop_and_count(tmp_path):
    img_dir, ann_file = _write_fixture(tmp_path)
    ds = COCODetection(img_dir, ann_file, train=True)
    assert ds.class_names == ["dog", "cat"]  # sorted by category id 2, 5
    assert ds.label_to_category_id == {1: 2, 2: 5}
    assert ds.image_ids == [10]  # 20 (no annotation) and 30 (crowd only) skipped
    image, target = ds[0]
    assert image.shape == (3, 30, 40) and image.dtype == torch.float32
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert target["image_id"] == 10
    assert target["boxes"].tolist() == [[2, 3, 12, 11], [30, 20, 40, 30]]
    assert target["labels"].tolist() == [2, 1]
    assert target["labels"].dtype == torch.int64 and target["boxes"].dtype == torch.float32
    r = ds.report
    assert (r["crowd"], r["degenerate"], r["unknown_category"], r["duplicate_id"]) == (2, 4, 1, 1)
    assert (r["clipped"], r["empty_images"], r["images"], r["boxes"]) == (1, 2, 1, 2)
    text = ds.report_text()
    assert "\n" not in text and "2 crowd" in text and "4 degenerate" in text
    assert "1 duplicate-id" in text and "clipped 1" in text
    assert ds.get_img_info(0) == {"height": 30, "width": 40, "id": 10, "file_name": "a.jpg"}


def test_eval_mode_keeps_every_image_and_a_clean_ground_truth(tmp_path):
    img_dir, ann_file = _write_fixture(tmp_path)
    ds = COCODetection(img_dir, ann_file, train=False)
    assert ds.image_ids == [10, 20, 30]
    assert ds[1][1]["boxes"].shape == (0, 4) and ds[1][1]["labels"].shape == (0,)
    assert ds.report["empty_images"] == 2 and "kept" in ds.report_text()
    gt = ds.coco
    # the ground truth is what the report describes: good and partly outside (clipped) boxes,
    # crowd boxes as ignore regions; tiny, NaN, negative, entirely outside, unknown category and
    # duplicate ids are dropped
    assert sorted(gt.getAnnIds()) == [1, 2, 5, 9]
    assert gt.loadAnns(5)[0]["bbox"] == [30, 20, 10, 10]
    assert "2 crowd kept as ignore regions" in ds.report_text()
    assert all("area" in a and "iscrowd" in a for a in gt.loadAnns(gt.getAnnIds()))
    assert sorted(gt.getImgIds()) == [10, 20, 30]


def test_ground_truth_scores_perfect_detections_as_ap_one(tmp_path):
    img_dir, ann_file = _write_fixture(tmp_path)
    ds = COCODetection(img_dir, ann_file, train=False)
    dets = [
        {"image_id": 10, "category_id": 5, "bbox": [2, 3, 10, 8], "score": 0.9},
        {"image_id": 10, "category_id": 2, "bbox": [30, 20, 10, 10], "score": 0.8},  # clipped
        {"image_id": 10, "category_id": 2, "bbox": [1, 1, 38, 28], "score": 0.6},  # on crowd
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(ds.coco, ds.coco.loadRes(dets), "bbox")
        evaluator.params.areaRng = [[0, 1e10]] * 4
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    assert evaluator.stats[0] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.pop("categories"), "'categories'"),
        (lambda d: d["annotations"][1].pop("bbox"), r"annotations\[1\] \(id 2\).*bbox"),
        (lambda d: d["annotations"][2].update(bbox=[1, 2, 3]), r"annotations\[2\] \(id 3\)"),
        (lambda d: d["annotations"][0].update(bbox="1,2,3,4"), r"annotations\[0\] \(id 1\)"),
        (lambda d: d["annotations"][0].pop("image_id"), r"annotations\[0\].*'image_id'"),
        (lambda d: d["annotations"][3].update(iscrowd=2), r"annotations\[3\].*iscrowd"),
        (lambda d: d["images"][1].pop("width"), r"images\[1\] \(id 10\).*'width'"),
        (lambda d: d["images"][2].update(id=30), r"images\[2\] \(id 30\).*repeated"),
        (lambda d: d["categories"][0].pop("name"), r"categories\[0\] \(id 5\).*'name'"),
        (lambda d: d["annotations"].append(7), r"annotations\[10\].*object"),
    ],
)
def test_malformed_json_names_file_and_record(tmp_path, mutate, expected):
    img_dir, ann_file = _write_fixture(tmp_path)
    data = json.loads(ann_file.read_text())
    mutate(data)
    ann_file.write_text(json.dumps(data))
    with pytest.raises(FadError, match=expected) as info:
        COCODetection(img_dir, ann_file, train=True)
    assert "ann.json" in str(info.value)


def test_unreadable_json_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [],\n "annotations": [,]}')
    with pytest.raises(FadError, match="bad.json.*line 2"):
        COCODetection(tmp_path, bad, train=True)
    with pytest.raises(FadError, match="missing.json"):
        COCODetection(tmp_path, tmp_path / "missing.json", train=True)


def test_corrupt_or_missing_image_raises_at_getitem(tmp_path):
    img_dir, ann_file = _write_fixture(tmp_path)
    ds = COCODetection(img_dir, ann_file, train=False)
    (img_dir / "b.jpg").write_bytes(b"broken")
    (img_dir / "c.jpg").unlink()
    with pytest.raises(FadError, match="b.jpg"):
        ds[1]
    with pytest.raises(FadError, match="c.jpg"):
        ds[2]
    Image.new("RGB", (41, 30)).save(img_dir / "b.jpg")
    with pytest.raises(FadError, match=r"b.jpg is 41x30 .* 40x30"):
        ds[1]


def test_exif_rotated_image_falls_back_to_the_annotated_orientation(tmp_path):
    img_dir, ann_file = _write_fixture(tmp_path)
    pixels = np.zeros((30, 40, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(img_dir / "a.jpg", exif=exif.tobytes())
    image, _ = COCODetection(img_dir, ann_file, train=True)[0]
    assert image.shape == (3, 30, 40)

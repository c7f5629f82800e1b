"""Evaluation scores exactly the ground truth the data report describes: boxes the report counts
as dropped are not scored, boxes it counts as clipped are scored clipped, and crowd regions (COCO)
and difficult objects (VOC) are reported as kept as ignore regions, which is how they are scored."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from fad.data.coco import COCODetection
from fad.data.voc import VOCDetection
from fad.evaluation import evaluate_coco, evaluate_voc

BOXES = [  # (bbox xywh on a 100x80 image, iscrowd)
    ([10, 10, 30, 20], 0),  # good
    ([50, 10, 0, 20], 0),  # zero width: can never be matched
    ([60, 40, 1, 20], 0),  # 1 px wide: dropped from training targets as degenerate
    ([80, 50, 40, 20], 0),  # partly outside: clipped to [80, 50, 20, 20]
    ([0, 0, 100, 80], 1),  # crowd
]


@pytest.fixture
def coco_set(tmp_path) -> COCODetection:
    Image.new("RGB", (100, 80)).save(tmp_path / "a.jpg")
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 80}],
        "annotations": [
            {"id": i + 1, "image_id": 1, "category_id": 1, "bbox": box, "iscrowd": crowd}
            for i, (box, crowd) in enumerate(BOXES)
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(data))
    return COCODetection(tmp_path, tmp_path / "ann.json", train=False)


def test_the_report_describes_the_scored_coco_ground_truth(coco_set):
    text = coco_set.report_text()
    assert "1 images, 2 boxes" in text and "dropped 2 degenerate" in text, text
    assert "clipped 1" in text and "1 crowd kept as ignore regions" in text, text
    scored = coco_set.coco.loadAnns(coco_set.coco.getAnnIds())
    assert sorted((a["bbox"], a["iscrowd"]) for a in scored) == [
        ([0, 0, 100, 80], 1),
        ([10, 10, 30, 20], 0),
        ([80, 50, 20, 20], 0),
    ]


def test_a_detector_that_finds_every_reported_box_scores_ap_one(coco_set):
    record = coco_set.records[0]
    results = [
        {"image_id": 1, "category_id": 1, "bbox": [x0, y0, x1 - x0, y1 - y0], "score": 0.9}
        for x0, y0, x1, y1 in record.boxes.tolist()
    ]
    assert len(results) == coco_set.report["boxes"] == 2
    coco = evaluate_coco(coco_set.coco, results, stream=None)
    assert coco.stats["AP"] == pytest.approx(1.0)
    assert coco.stats["AR100"] == pytest.approx(1.0)


def _voc(tmp_path) -> VOCDetection:
    data_dir = tmp_path / "VOC2012"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (data_dir / sub).mkdir(parents=True)
    Image.new("RGB", (50, 40)).save(data_dir / "JPEGImages" / "x.jpg")
    objects = [
        ("dog", (1, 1, 10, 20), 0),
        ("dog", (20, 5, 20, 30), 0),
        ("cat", (30, 20, 60, 50), 0),
    ]
    objects.append(("cat", (5, 5, 30, 30), 1))
    xml = "".join(
        f"<object><name>{n}</name><difficult>{d}</difficult><bndbox><xmin>{a}</xmin>"
        f"<ymin>{b}</ymin><xmax>{c}</xmax><ymax>{e}</ymax></bndbox></object>"
        for n, (a, b, c, e), d in objects
    )
    (data_dir / "Annotations" / "x.xml").write_text(
        f"<annotation><size><width>50</width><height>40</height></size>{xml}</annotation>"
    )
    (data_dir / "ImageSets" / "Main" / "val.txt").write_text("x\n")
    return VOCDetection(data_dir, "val", train=False)


def test_the_report_describes_the_scored_voc_ground_truth(tmp_path):
    voc = _voc(tmp_path)
    text = voc.report_text()
    assert "1 images, 2 boxes" in text and "dropped 1 degenerate" in text, text
    assert "clipped 1" in text and "1 difficult kept as ignore regions" in text, text
    gt = voc.get_groundtruth(0)
    assert gt["boxes"].tolist() == [[0, 0, 10, 20], [29, 19, 50, 40], [4, 4, 30, 30]]
    assert gt["difficult"].tolist() == [False, False, True]
    record = voc.records[0]
    detections = {
        "boxes": torch.from_numpy(record.boxes),
        "scores": torch.ones(len(record.boxes)),
        "labels": torch.from_numpy(record.labels),
    }
    assert evaluate_voc([gt], [detections], voc.class_names, stream=None).mAP == pytest.approx(1.0)

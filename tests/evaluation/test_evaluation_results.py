"""COCO result records from detections, and their atomic JSON file."""

from __future__ import annotations

import json

import pytest
import torch

from fad.errors import FadError
from fad.evaluation import detections_to_coco_results, write_results_json

LABEL_TO_CATEGORY = {1: 3, 2: 7}


def test_boxes_become_xywh_with_category_ids():
    records = detections_to_coco_results(
        5,
        torch.tensor([[10.0, 20.0, 30.5, 60.25], [0.123456, 1.0, 2.0, 3.987654]]),
        torch.tensor([0.9, 0.123456789]),
        torch.tensor([2, 1]),
        LABEL_TO_CATEGORY,
    )
    assert records == [
        {"image_id": 5, "category_id": 7, "bbox": [10.0, 20.0, 20.5, 40.25], "score": 0.9},
        {"image_id": 5, "category_id": 3, "bbox": [0.12, 1.0, 1.88, 2.99], "score": 0.123457},
    ]
    assert all(type(v) is float for v in records[0]["bbox"])
    assert type(records[0]["score"]) is float and type(records[0]["category_id"]) is int


def test_no_detections_give_no_records():
    empty = detections_to_coco_results(
        1, torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), LABEL_TO_CATEGORY
    )
    assert empty == []


@pytest.mark.parametrize(
    ("boxes", "scores", "labels", "message"),
    [
        (torch.zeros(2, 4), torch.ones(2), torch.tensor([1, 9]), "label 9"),
        (torch.zeros(2, 3), torch.ones(2), torch.tensor([1, 1]), r"shape \[N, 4\]"),
        (torch.zeros(2, 4), torch.ones(3), torch.tensor([1, 1]), "must both have shape"),
        (torch.full((1, 4), float("nan")), torch.ones(1), torch.tensor([1]), "non-finite"),
    ],
)
def test_bad_detections_raise(boxes, scores, labels, message):
    with pytest.raises(FadError, match=message):
        detections_to_coco_results(1, boxes, scores, labels, LABEL_TO_CATEGORY)


def test_write_results_json_round_trips_and_replaces(tmp_path):
    path = tmp_path / "sub" / "results.json"
    first = [{"image_id": 1, "category_id": 3, "bbox": [1.0, 2.0, 3.0, 4.0], "score": 0.5}]
    assert write_results_json(first, path) == path
    assert json.loads(path.read_text()) == first
    write_results_json([], path)
    assert json.loads(path.read_text()) == []
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]


def test_write_results_json_leaves_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "results.json"
    write_results_json([{"score": 1.0}], path)
    with pytest.raises(TypeError):
        write_results_json([{"score": object()}], path)
    assert json.loads(path.read_text()) == [{"score": 1.0}]
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]

"""evaluate_voc: VOC matching rules and hand-computed AP values."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from fad.errors import FadError
from fad.evaluation import evaluate_voc
from fad.evaluation.voc_eval import area_ap, eleven_point_ap

NAMES = ["car", "person"]
BOX_A = [10.0, 10.0, 50.0, 50.0]
BOX_B = [100.0, 100.0, 160.0, 140.0]
BOX_C = [200.0, 20.0, 260.0, 90.0]
NOWHERE = [300.0, 300.0, 320.0, 320.0]


def gt(boxes, labels, difficult=None) -> dict:
    entry = {"boxes": torch.tensor(boxes).reshape(-1, 4), "labels": torch.tensor(labels)}
    if difficult is not None:
        entry["difficult"] = torch.tensor(difficult, dtype=torch.bool)
    return entry


def det(boxes, scores, labels) -> dict:
    return {
        "boxes": torch.tensor(boxes).reshape(-1, 4),
        "scores": torch.tensor(scores),
        "labels": torch.tensor(labels, dtype=torch.long),
    }


def run(groundtruths, detections, **kwargs):
    return evaluate_voc(groundtruths, detections, NAMES, stream=None, **kwargs)


@pytest.mark.parametrize("use_07_metric", [False, True])
def test_perfect_detections_give_map_one(use_07_metric):
    gts = [gt([BOX_A, BOX_B], [1, 2]), gt([BOX_C], [2])]
    dts = [det([BOX_A, BOX_B], [0.9, 0.8], [1, 2]), det([BOX_C], [0.7], [2])]
    stream = io.StringIO()
    result = evaluate_voc(gts, dts, NAMES, use_07_metric=use_07_metric, stream=stream)
    assert result.mAP == pytest.approx(1.0)
    assert result.per_class == pytest.approx({"car": 1.0, "person": 1.0})
    assert stream.getvalue() == result.text and "mAP = 1.000" in result.text


def test_detection_on_difficult_box_counts_neither_way():
    gts = [gt([BOX_A, BOX_B], [1, 1], difficult=[False, True])]
    # The difficult hit ranks first: as an FP it would halve AP. Missing the difficult box must
    # not lower recall either (it is not counted as a positive), unlike a normal box.
    dts = [det([BOX_B, BOX_A], [0.95, 0.5], [1, 1])]
    assert run(gts, dts).per_class["car"] == pytest.approx(1.0)
    not_difficult = [gt([BOX_A, BOX_B], [1, 1], difficult=[False, False])]
    assert run(not_difficult, [det([BOX_A], [0.5], [1])]).per_class["car"] == pytest.approx(0.5)
    assert run(gts, [det([BOX_A], [0.5], [1])]).per_class["car"] == pytest.approx(1.0)


def test_duplicate_detection_is_a_false_positive():
    gts = [gt([BOX_A, BOX_B], [1, 1])]
    dts = [det([BOX_A, BOX_A, BOX_B], [0.9, 0.8, 0.7], [1, 1, 1])]
    # TP, FP, TP: recall .5 .5 1, precision 1 .5 2/3.
    assert run(gts, dts).per_class["car"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    eleven = run(gts, dts, use_07_metric=True).per_class["car"]
    assert eleven == pytest.approx((6 * 1 + 5 * 2 / 3) / 11)


def test_hand_computed_ap_for_both_metrics():
    gts = [gt([BOX_A, BOX_B], [1, 1]), gt([BOX_C], [1])]
    dts = [
        det([BOX_A, NOWHERE, BOX_B], [0.9, 0.8, 0.5], [1, 1, 1]),
        det([BOX_C, NOWHERE], [0.7, 0.6], [1, 1]),
    ]
    # By score: TP .9, FP .8, TP .7, FP .6, TP .5
    # recall    1/3, 1/3, 2/3, 2/3, 1;  precision 1, 1/2, 2/3, 1/2, 3/5
    # envelope at recall 1/3 -> 1, 2/3 -> 2/3, 1 -> 3/5
    area = (1 + 2 / 3 + 3 / 5) / 3
    eleven = (4 * 1 + 3 * 2 / 3 + 4 * 3 / 5) / 11  # t=0..0.3 | 0.4..0.6 | 0.7..1.0
    assert run(gts, dts).per_class["car"] == pytest.approx(area)
    assert run(gts, dts, use_07_metric=True).per_class["car"] == pytest.approx(eleven)
    recall = np.array([1, 1, 2, 2, 3]) / 3
    precision = np.array([1, 1 / 2, 2 / 3, 1 / 2, 3 / 5])
    assert area_ap(recall, precision) == pytest.approx(area)
    assert eleven_point_ap(recall, precision) == pytest.approx(eleven)


def test_precision_envelope_uses_later_higher_precision():
    # TP, FP, FP, TP, TP of 3 positives: precision rises to 3/5 after dipping to 1/3.
    recall = np.array([1, 1, 1, 2, 3]) / 3
    precision = np.array([1, 1 / 2, 1 / 3, 1 / 2, 3 / 5])
    assert area_ap(recall, precision) == pytest.approx((1 + 3 / 5 + 3 / 5) / 3)
    assert eleven_point_ap(recall, precision) == pytest.approx((4 * 1 + 7 * 3 / 5) / 11)


def test_iou_threshold_is_strict_and_configurable():
    gts = [gt([[0.0, 0.0, 10.0, 10.0]], [1])]
    half = det([[0.0, 0.0, 10.0, 5.0]], [0.9], [1])  # IoU exactly 0.5
    assert run(gts, [half]).per_class["car"] == 0.0
    assert run(gts, [half], iou_thresh=0.4).per_class["car"] == pytest.approx(1.0)


def test_class_without_ground_truth_is_nan_and_left_out_of_the_mean():
    gts = [gt([BOX_A], [1])]
    dts = [det([BOX_A, BOX_B], [0.9, 0.8], [1, 2])]
    result = run(gts, dts)
    assert math.isnan(result.per_class["person"])
    assert result.mAP == pytest.approx(1.0)
    assert any(line.split() == ["person", "-"] for line in result.text.splitlines())


def test_missed_class_and_images_without_ground_truth():
    gts = [gt([BOX_A, BOX_B], [1, 2]), gt([], [])]
    dts = [det([BOX_A], [0.5], [1]), det([BOX_C], [0.9], [1])]  # FP on the empty image first
    result = run(gts, dts)
    assert result.per_class["person"] == 0.0
    assert result.per_class["car"] == pytest.approx(0.5)
    assert result.mAP == pytest.approx(0.25)


def test_bad_inputs_raise():
    with pytest.raises(FadError, match="1 ground-truth images but 2"):
        run([gt([BOX_A], [1])], [det([], [], []), det([], [], [])])
    with pytest.raises(FadError, match=r"detections\[0\]: label 3 is outside 1..2"):
        run([gt([BOX_A], [1])], [det([BOX_A], [0.5], [3])])
    with pytest.raises(FadError, match=r"groundtruths\[0\] lacks key 'labels'"):
        run([{"boxes": torch.zeros(1, 4)}], [det([], [], [])])

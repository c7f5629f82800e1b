"""Pascal VOC detection AP (per class, then mean), written with numpy.

Semantics of the VOC devkit: per class, detections of all images are taken by descending score;
each is assigned to the ground-truth box it overlaps most; IoU above ``iou_thresh`` with a
not-yet-matched box is a true positive, with an already-matched box a false positive (duplicate),
and with a ``difficult`` box neither. Boxes are continuous xyxy (no "+1" pixel convention).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

import numpy as np
import torch

from fad.errors import FadError
from fad.evaluation.table import format_score, format_table


@dataclass
class VocEvalResult:
    """mAP over the classes that have ground truth, AP per class (NaN: no ground truth), text."""

    mAP: float
    per_class: dict[str, float]
    text: str


def evaluate_voc(
    groundtruths: Sequence[Mapping[str, torch.Tensor]],
    detections: Sequence[Mapping[str, torch.Tensor]],
    class_names: Sequence[str],
    *,
    iou_thresh: float = 0.5,
    use_07_metric: bool = False,
    stream: TextIO | None = sys.stdout,
) -> VocEvalResult:
    """Compute VOC AP per class and their mean, and print a per-class table.

    Args:
        groundtruths: per image, boxes [G, 4] xyxy, labels [G] in 1..K, difficult [G] bool
            (optional, default all False).
        detections: per image (same order), boxes [D, 4] xyxy, scores [D], labels [D] in 1..K.
        class_names: K names; ``class_names[l - 1]`` names label ``l``.
        iou_thresh: a detection matches when IoU > iou_thresh.
        use_07_metric: 11-point interpolated AP (VOC2007) instead of the area under the
            monotone precision envelope (VOC2010+).
        stream: where to print; None prints nothing.
    """
    if len(groundtruths) != len(detections):
        raise FadError(
            f"evaluate_voc: {len(groundtruths)} ground-truth images but {len(detections)} "
            "detection entries"
        )
    num_classes = len(class_names)
    gts = [_ground_truth_arrays(i, gt, num_classes) for i, gt in enumerate(groundtruths)]
    dts = [_detection_arrays(i, dt, num_classes) for i, dt in enumerate(detections)]

    per_class = {}
    for label, name in enumerate(class_names, start=1):
        recall, precision = _class_pr_curve(gts, dts, label, iou_thresh)
        if recall is None:
            per_class[name] = math.nan
        elif use_07_metric:
            per_class[name] = eleven_point_ap(recall, precision)
        else:
            per_class[name] = area_ap(recall, precision)
    valid = [ap for ap in per_class.values() if not math.isnan(ap)]
    mean_ap = float(np.mean(valid)) if valid else math.nan

    metric = "VOC2007 11-point" if use_07_metric else "VOC2010+ area"
    table = format_table(
        ["class", "AP"],
        [[name, format_score(ap)] for name, ap in per_class.items()],
    )
    text = f"VOC AP @ IoU>{iou_thresh:g} ({metric})\n{table}\nmAP = {format_score(mean_ap)}\n"
    if stream is not None:
        stream.write(text)
    return VocEvalResult(mAP=mean_ap, per_class=per_class, text=text)


def area_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the monotone (non-increasing) precision envelope of a PR curve.

    Args:
        recall: [D] non-decreasing recall after each detection.
        precision: [D] precision after each detection.
    """
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]  # envelope: best precision at recall >= r
    steps = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def eleven_point_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """Mean over t in {0, 0.1, ..., 1} of the best precision at recall >= t (0 if none)."""
    points = [
        float(precision[recall >= t].max()) if np.any(recall >= t) else 0.0
        for t in np.linspace(0.0, 1.0, 11)
    ]
    return float(np.mean(points))


def _class_pr_curve(
    gts: Sequence[dict[str, np.ndarray]],
    dts: Sequence[dict[str, np.ndarray]],
    label: int,
    iou_thresh: float,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Recall and precision [D] after each detection of ``label``; (None, None) without GT."""
    class_gts = []
    num_positives = 0
    for gt in gts:
        keep = gt["labels"] == label
        class_gts.append((gt["boxes"][keep], gt["difficult"][keep]))
        num_positives += int(np.count_nonzero(~gt["difficult"][keep]))
    if num_positives == 0:
        return None, None

    image_idx, scores, boxes = [], [], []
    for i, dt in enumerate(dts):
        keep = dt["labels"] == label
        image_idx.append(np.full(int(keep.sum()), i))
        scores.append(dt["scores"][keep])
        boxes.append(dt["boxes"][keep])
    order = np.argsort(-np.concatenate(scores), kind="stable")
    image_idx = np.concatenate(image_idx)[order]
    boxes = np.concatenate(boxes)[order]

    matched = [np.zeros(len(b), dtype=bool) for b, _ in class_gts]
    tp = np.zeros(len(order))
    fp = np.zeros(len(order))
    for d, (i, box) in enumerate(zip(image_idx, boxes, strict=True)):
        gt_boxes, difficult = class_gts[i]
        if len(gt_boxes) == 0:
            fp[d] = 1
            continue
        ious = _iou(box, gt_boxes)
        j = int(np.argmax(ious))
        if ious[j] <= iou_thresh:
            fp[d] = 1
        elif difficult[j]:
            continue
        elif matched[i][j]:
            fp[d] = 1
        else:
            tp[d] = 1
            matched[i][j] = True
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    recall = tp / num_positives
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return recall, precision


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box [4] with boxes [G, 4], all xyxy; returns [G]."""
    lt = np.maximum(box[:2], boxes[:, :2])
    rb = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0.0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, np.finfo(np.float64).tiny), 0.0)


def _ground_truth_arrays(
    index: int, gt: Mapping[str, torch.Tensor], num_classes: int
) -> dict[str, np.ndarray]:
    boxes, labels = _boxes_and_labels(f"groundtruths[{index}]", gt, num_classes)
    difficult = gt.get("difficult")
    if difficult is None:
        difficult = np.zeros(len(labels), dtype=bool)
    else:
        difficult = _to_numpy(difficult).astype(bool).reshape(-1)
        if difficult.shape != labels.shape:
            raise FadError(f"groundtruths[{index}]: 'difficult' must have shape [{len(labels)}]")
    return {"boxes": boxes, "labels": labels, "difficult": difficult}


def _detection_arrays(
    index: int, dt: Mapping[str, torch.Tensor], num_classes: int
) -> dict[str, np.ndarray]:
    where = f"detections[{index}]"
    boxes, labels = _boxes_and_labels(where, dt, num_classes)
    if "scores" not in dt:
        raise FadError(f"{where} lacks key 'scores'")
    scores = _to_numpy(dt["scores"]).astype(np.float64).reshape(-1)
    if scores.shape != labels.shape:
        raise FadError(f"{where}: 'scores' must have shape [{len(labels)}]")
    return {"boxes": boxes, "labels": labels, "scores": scores}


def _boxes_and_labels(
    where: str, entry: Mapping[str, torch.Tensor], num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    for key in ("boxes", "labels"):
        if key not in entry:
            raise FadError(f"{where} lacks key '{key}'")
    boxes = _to_numpy(entry["boxes"]).astype(np.float64).reshape(-1, 4)
    labels = _to_numpy(entry["labels"]).astype(np.int64).reshape(-1)
    if len(boxes) != len(labels):
        raise FadError(f"{where}: {len(boxes)} boxes but {len(labels)} labels")
    bad = labels[(labels < 1) | (labels > num_classes)]
    if bad.size:
        raise FadError(f"{where}: label {int(bad[0])} is outside 1..{num_classes}")
    return boxes, labels


def _to_numpy(value: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)

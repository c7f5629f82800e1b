"""COCO box evaluation: pycocotools COCOeval plus a per-class AP table."""

from __future__ import annotations

import contextlib
import io
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from fad.errors import FadError
from fad.evaluation.table import format_score, format_table

STAT_NAMES = (
    "AP", "AP50", "AP75", "APs", "APm", "APl",
    "AR1", "AR10", "AR100", "ARs", "ARm", "ARl",
)  # fmt: skip
RESULT_KEYS = ("image_id", "category_id", "bbox", "score")


@dataclass
class CocoEvalResult:
    """What :func:`evaluate_coco` measured.

    Attributes:
        stats: the 12 COCO numbers by name (AP ... ARl); -1 where pycocotools gives -1.
        per_class: class name -> {"AP": ..., "AP50": ...}; NaN for a class without ground truth.
        precision: COCOeval.eval["precision"], shape [T=10, R=101, K, A=4, M=3].
        text: everything that was printed.
    """

    stats: dict[str, float]
    per_class: dict[str, dict[str, float]]
    precision: np.ndarray
    text: str


def evaluate_coco(
    coco_gt: COCO,
    results: Sequence[dict],
    *,
    class_names: Sequence[str] | None = None,
    label_to_category_id: Mapping[int, int] | None = None,
    image_ids: Sequence[int] | None = None,
    stream: TextIO | None = sys.stdout,
) -> CocoEvalResult:
    """Evaluate COCO box results against ``coco_gt`` and print the summary and per-class table.

    Args:
        coco_gt: ground truth (annotation ids must be >= 1, as pycocotools assumes).
        results: COCO result dicts (image_id, category_id, bbox [x, y, w, h], score); may be empty.
        class_names: names for the table. With ``label_to_category_id``, ``class_names[l - 1]``
            names label ``l``; without it, one name per ground-truth category in ascending id
            order. Default: the category names stored in ``coco_gt``.
        label_to_category_id: contiguous label (1..K) -> COCO category id; only used to name
            categories together with ``class_names``.
        image_ids: evaluate only these images (default: all images of ``coco_gt``).
        stream: where to print; None prints nothing.
    """
    _check_ground_truth(coco_gt)
    coco_dt = _results_to_coco(coco_gt, results)
    evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
    if image_ids is not None:
        evaluator.params.imgIds = _checked_image_ids(coco_gt, image_ids)
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.evaluate()
        evaluator.accumulate()
    with contextlib.redirect_stdout(io.StringIO()) as summary:
        evaluator.summarize()

    names = _category_names(coco_gt, evaluator.params.catIds, class_names, label_to_category_id)
    precision = evaluator.eval["precision"]
    per_class = _per_class_ap(precision, evaluator.params.iouThrs, names)
    table = format_table(
        ["category", "AP", "AP50"],
        [[name, format_score(v["AP"]), format_score(v["AP50"])] for name, v in per_class.items()],
    )
    text = f"{summary.getvalue()}\nPer-category bbox AP (area=all, maxDets=100):\n{table}\n"
    if stream is not None:
        stream.write(text)
    stats = {name: float(v) for name, v in zip(STAT_NAMES, evaluator.stats, strict=True)}
    return CocoEvalResult(stats=stats, per_class=per_class, precision=precision, text=text)


def summary_markdown(result: CocoEvalResult) -> str:
    """The 12 COCO numbers as a one-row markdown table (3 decimals; 'n/a' where -1)."""
    values = [result.stats[name] for name in STAT_NAMES]
    cells = ["n/a" if v < 0 else f"{v:.3f}" for v in values]
    return "\n".join(
        [
            "| " + " | ".join(STAT_NAMES) + " |",
            "|" + "---:|" * len(STAT_NAMES),
            "| " + " | ".join(cells) + " |",
        ]
    )


def _check_ground_truth(coco_gt: COCO) -> None:
    """pycocotools treats match id 0 as 'unmatched', so a GT annotation with id 0 is never a TP."""
    bad = [ann_id for ann_id in coco_gt.anns if ann_id <= 0]
    if bad:
        raise FadError(f"coco_gt: annotation id {bad[0]} must be >= 1 (pycocotools needs it)")


def _checked_image_ids(coco_gt: COCO, image_ids: Sequence[int]) -> list[int]:
    ids = sorted({int(i) for i in image_ids})
    if not ids:
        raise FadError("image_ids is empty: nothing to evaluate")
    unknown = [i for i in ids if i not in coco_gt.imgs]
    if unknown:
        raise FadError(f"image_ids: image {unknown[0]} is not in the ground truth")
    return ids


def _results_to_coco(coco_gt: COCO, results: Sequence[dict]) -> COCO:
    """Index ``results`` like ``COCO.loadRes`` does for boxes, also when there are none.

    The caller's dicts are not modified; detection ids start at 1 as in ``loadRes``.
    """
    annotations = []
    for index, record in enumerate(results):
        missing = [k for k in RESULT_KEYS if k not in record]
        if missing:
            raise FadError(f"detection result #{index} lacks key '{missing[0]}'")
        if record["image_id"] not in coco_gt.imgs:
            raise FadError(
                f"detection result #{index}: image_id {record['image_id']} is not in the ground truth"
            )
        if record["category_id"] not in coco_gt.cats:
            raise FadError(
                f"detection result #{index}: category_id {record['category_id']} "
                f"is not a ground-truth category {sorted(coco_gt.cats)}"
            )
        if len(record["bbox"]) != 4:
            raise FadError(f"detection result #{index}: bbox must be [x, y, w, h]")
        x, y, w, h = (float(v) for v in record["bbox"])
        annotations.append(
            {
                "id": index + 1,
                "image_id": record["image_id"],
                "category_id": record["category_id"],
                "bbox": [x, y, w, h],
                "score": float(record["score"]),
                "area": w * h,
                "iscrowd": 0,
            }
        )
    coco_dt = COCO()
    coco_dt.dataset = {
        "images": list(coco_gt.dataset.get("images", [])),
        "categories": [dict(c) for c in coco_gt.dataset.get("categories", [])],
        "annotations": annotations,
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt.createIndex()
    return coco_dt


def _category_names(
    coco_gt: COCO,
    category_ids: Sequence[int],
    class_names: Sequence[str] | None,
    label_to_category_id: Mapping[int, int] | None,
) -> list[str]:
    """One table name per evaluated category id, in ``category_ids`` order."""
    names = {cid: str(coco_gt.cats[cid].get("name", cid)) for cid in category_ids}
    if class_names is not None and label_to_category_id is not None:
        for label, cid in label_to_category_id.items():
            if cid not in names:
                raise FadError(f"label_to_category_id: category {cid} is not in the ground truth")
            if not 1 <= label <= len(class_names):
                raise FadError(
                    f"label_to_category_id: label {label} has no name in class_names "
                    f"({len(class_names)} names for labels 1..{len(class_names)})"
                )
            names[cid] = class_names[label - 1]
    elif class_names is not None:
        if len(class_names) != len(category_ids):
            raise FadError(
                f"class_names has {len(class_names)} names but the ground truth has "
                f"{len(category_ids)} categories"
            )
        names = dict(zip(category_ids, class_names, strict=True))
    ordered = [names[cid] for cid in category_ids]
    if len(set(ordered)) != len(ordered):
        raise FadError(f"class names are not unique: {ordered}")
    return ordered


def _per_class_ap(
    precision: np.ndarray, iou_thresholds: np.ndarray, names: Sequence[str]
) -> dict[str, dict[str, float]]:
    """AP (IoU .50:.95) and AP50 per class, area 'all', last maxDets; -1 entries excluded."""
    iou50 = np.flatnonzero(np.isclose(iou_thresholds, 0.5))
    per_class = {}
    for k, name in enumerate(names):
        all_ious = precision[:, :, k, 0, -1]  # [T, R]
        per_class[name] = {
            "AP": _mean_valid(all_ious),
            "AP50": _mean_valid(all_ious[iou50]),
        }
    return per_class


def _mean_valid(values: np.ndarray) -> float:
    """Mean of the entries > -1 (pycocotools' marker for 'no ground truth'); NaN if none."""
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else math.nan

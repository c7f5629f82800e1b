"""Turn per-image detections into COCO result records and write them to disk atomically."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from torch import Tensor

from fad.errors import FadError
from fad.runtime.atomic import atomic_write_text

BOX_DECIMALS = 2
SCORE_DECIMALS = 6


def detections_to_coco_results(
    image_id: int,
    boxes: Tensor,
    scores: Tensor,
    labels: Tensor,
    label_to_category_id: Mapping[int, int],
) -> list[dict]:
    """Convert one image's detections to COCO result dicts.

    Args:
        image_id: COCO id of the image.
        boxes: [N, 4] boxes (x1, y1, x2, y2) in original-image pixels.
        scores: [N] confidences.
        labels: [N] contiguous labels 1..K.
        label_to_category_id: contiguous label -> COCO category id.

    Returns:
        N dicts with image_id, category_id, bbox [x, y, w, h] (pixels, 2 decimals) and score.
    """
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise FadError(f"image {image_id}: boxes must have shape [N, 4], got {list(boxes.shape)}")
    n = boxes.shape[0]
    if tuple(scores.shape) != (n,) or tuple(labels.shape) != (n,):
        raise FadError(
            f"image {image_id}: scores {list(scores.shape)} and labels {list(labels.shape)} "
            f"must both have shape [{n}] to match boxes"
        )
    records = []
    box_rows, score_rows, label_rows = (t.detach().cpu().tolist() for t in (boxes, scores, labels))
    rows = zip(box_rows, score_rows, label_rows, strict=True)
    for (x1, y1, x2, y2), score, label in rows:
        if label not in label_to_category_id:
            raise FadError(
                f"image {image_id}: label {label} is not in label_to_category_id "
                f"(known labels: {sorted(label_to_category_id)})"
            )
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2, score)):
            raise FadError(f"image {image_id}: non-finite detection box or score")
        records.append(
            {
                "image_id": int(image_id),
                "category_id": int(label_to_category_id[label]),
                "bbox": [
                    round(x1, BOX_DECIMALS),
                    round(y1, BOX_DECIMALS),
                    round(x2 - x1, BOX_DECIMALS),
                    round(y2 - y1, BOX_DECIMALS),
                ],
                "score": round(score, SCORE_DECIMALS),
            }
        )
    return records


def write_results_json(results: Sequence[dict], path: str | os.PathLike) -> Path:
    """Write ``results`` as a JSON list; readers never see a half-written file.

    The JSON goes to a temporary file in the destination folder, which then replaces ``path``.
    """
    path = Path(path)
    atomic_write_text(path, json.dumps(list(results)))
    return path

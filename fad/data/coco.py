"""COCO-format detection datasets (COCO itself, the shapes set, any IMG_DIR@ANN_JSON).

The json is validated record by record (a structural error names the file, the record's index
and id), then cleaned once for both modes: annotations with an unknown category or image id, a
repeated annotation id, or a non-finite, negative-size or entirely-outside bbox are dropped, and
missing `area` (w * h) and `iscrowd` (0) are filled in. The remaining boxes are clipped to the
image and those <= 1 px wide or high dropped; training skips images left without a box and
leaves crowd boxes out. Everything dropped or clipped is counted in `report`, and the evaluation
ground truth (`coco`) is exactly what the report describes: the kept boxes (clipped), and the
crowd boxes as ignore regions.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO

from fad.data.detection import (
    DetectionDataset,
    ImageRecord,
    Transforms,
    clean_boxes,
    finish_records,
    new_report,
)
from fad.errors import FadError
from fad.runtime.limits import MAX_ANNOTATION_BYTES, check_regular_file, shown

MAX_ID = 2**63 - 1  # ids and sizes must fit int64 (numpy, torch, pycocotools)


def coco_from_dict(dataset: dict[str, Any]) -> COCO:
    """A pycocotools COCO object indexing `dataset` in memory (its prints silenced)."""
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _is_number(value: Any) -> bool:
    """An int or float that converts to a float (10**400 does not)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        float(value)
    except OverflowError:
        return False
    return True


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_ID


class _RecordChecker:
    """Raises FadError naming the file, the list, the record index and its id."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, section: str, index: int, record: Any, problem: str) -> None:
        rid = record.get("id") if isinstance(record, dict) else None
        raise FadError(f"{self.path}: {section}[{index}] (id {rid}): {problem}")

    def require_ints(self, section: str, index: int, record: Any, keys: tuple[str, ...]) -> None:
        if not isinstance(record, dict):
            self.fail(section, index, record, f"expected an object, got {type(record).__name__}")
        for key in keys:
            if key not in record:
                self.fail(section, index, record, f"missing key {key!r}")
            if not _is_int(record[key]):
                value = record[key]
                large = isinstance(value, int) and not isinstance(value, bool)
                need = "an integer below 2**63" if large else "an integer"
                self.fail(section, index, record, f"{key!r} must be {need}, got {shown(value)}")


def load_coco_json(ann_file: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a COCO detection json; FadError names the file and offending record."""
    path = Path(ann_file)
    if not path.exists():
        raise FadError(f"annotation file not found: {path}")
    size = check_regular_file(path, "annotation file").st_size
    if size > MAX_ANNOTATION_BYTES:
        raise FadError(f"annotation file {path} is more than {MAX_ANNOTATION_BYTES} bytes")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise FadError(f"{path}: invalid json at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError:
        raise FadError(f"{path}: invalid json: nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise FadError(f"cannot read annotation file {path}: {exc}") from exc
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise FadError(f"{path}: invalid json: {shown(str(exc))[1:-1]}") from None
    except OSError as exc:
        raise FadError(f"cannot read annotation file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise FadError(f"{path}: expected a json object at the top level")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise FadError(f"{path}: missing or non-list key {key!r}")
    check = _RecordChecker(path)
    seen: dict[str, set[int]] = {"images": set(), "categories": set()}
    for section, keys, text_key in (
        ("images", ("id", "width", "height"), "file_name"),
        ("categories", ("id",), "name"),
    ):
        for i, record in enumerate(data[section]):
            check.require_ints(section, i, record, keys)
            if not isinstance(record.get(text_key), str):
                check.fail(section, i, record, f"missing or non-string {text_key!r}")
            if record["id"] in seen[section]:
                check.fail(section, i, record, "repeated id")
            seen[section].add(record["id"])
            if section == "images" and (record["width"] < 1 or record["height"] < 1):
                check.fail(section, i, record, "width and height must be positive")
    for i, ann in enumerate(data["annotations"]):
        check.require_ints("annotations", i, ann, ("id", "image_id", "category_id"))
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(map(_is_number, bbox)):
            check.fail("annotations", i, ann, f"'bbox' must be 4 numbers, got {shown(bbox)}")
        if ann.get("iscrowd", 0) not in (0, 1):
            check.fail(
                "annotations", i, ann, f"'iscrowd' must be 0 or 1, got {shown(ann['iscrowd'])}"
            )
    return data


def _valid_box(x: float, y: float, w: float, h: float, width: int, height: int) -> bool:
    """Finite, non-negative size and not entirely outside the image."""
    finite = all(math.isfinite(float(v)) for v in (x, y, w, h))
    return finite and w >= 0 and h >= 0 and x < width and y < height and x + w > 0 and y + h > 0


def clean_coco_dict(data: dict[str, Any], report: dict[str, int]) -> dict[str, Any]:
    """Drop annotations with unknown category/image, repeated id or a non-finite, negative-size
    or entirely-outside bbox; fill in missing `area` and `iscrowd`.

    Returns a new dict (the input is not modified); counts drops in `report`.
    """
    category_ids = {c["id"] for c in data["categories"]}
    sizes = {img["id"]: (img["width"], img["height"]) for img in data["images"]}
    seen: set[int] = set()
    annotations = []
    for ann in data["annotations"]:
        x, y, w, h = ann["bbox"]
        if ann["id"] in seen:
            report["duplicate_id"] += 1
        elif ann["category_id"] not in category_ids:
            report["unknown_category"] += 1
        elif ann["image_id"] not in sizes:
            report["unknown_image"] += 1
        elif not _valid_box(x, y, w, h, *sizes[ann["image_id"]]):
            report["degenerate"] += 1
        else:
            area = ann.get("area")
            area = float(area) if _is_number(area) else float(w) * float(h)
            area = area if math.isfinite(area) else float(w) * float(h)
            annotations.append({**ann, "area": area, "iscrowd": int(ann.get("iscrowd", 0))})
        seen.add(ann["id"])
    return {**data, "annotations": annotations}


class COCODetection(DetectionDataset):
    """A COCO-format detection dataset; labels are 1..K in sorted category-id order.

    Args:
        img_dir: folder holding the images (`file_name` is relative to it).
        ann_file: COCO json.
        train: training targets/skipping (see the module docstring) vs keep every image.
        transforms: `(PIL image, target) -> (FloatTensor[3, H, W], target)`; None: to tensor.
    """

    def __init__(
        self,
        img_dir: str | os.PathLike[str],
        ann_file: str | os.PathLike[str],
        *,
        train: bool,
        transforms: Transforms | None = None,
    ) -> None:
        self.ann_file = Path(ann_file)
        report = new_report()
        self._dataset = clean_coco_dict(load_coco_json(self.ann_file), report)
        categories = sorted(self._dataset["categories"], key=lambda c: c["id"])
        self.label_to_category_id = {i + 1: c["id"] for i, c in enumerate(categories)}
        self.category_id_to_label = {c: label for label, c in self.label_to_category_id.items()}
        records, self._scored = self._build_records(report, train)
        super().__init__(
            img_dir,
            records,
            [c["name"] for c in categories],
            report,
            str(self.ann_file),
            train=train,
            transforms=transforms,
        )

    def _build_records(
        self, report: dict[str, int], train: bool
    ) -> tuple[list[ImageRecord], list[dict[str, Any]]]:
        """The images with their cleaned boxes, and the annotations evaluation scores."""
        per_image: dict[int, list[dict[str, Any]]] = {}
        scored: list[dict[str, Any]] = []
        for ann in self._dataset["annotations"]:
            if ann["iscrowd"]:
                report["crowd"] += 1
                scored.append(ann)
            else:
                per_image.setdefault(ann["image_id"], []).append(ann)
        records = []
        for img in sorted(self._dataset["images"], key=lambda im: im["id"]):
            anns = per_image.get(img["id"], [])
            xywh = np.array([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4)
            xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
            boxes, keep = clean_boxes(xyxy, img["width"], img["height"], report)
            kept = [ann for ann, k in zip(anns, keep) if k]
            scored += [_clipped(ann, img["width"], img["height"]) for ann in kept]
            labels = np.array(
                [self.category_id_to_label[a["category_id"]] for a in anns], dtype=np.int64
            )[keep]
            records.append(
                ImageRecord(img["id"], img["file_name"], img["width"], img["height"], boxes, labels)
            )
        return finish_records(records, report, train=train), scored

    @cached_property
    def coco(self) -> COCO:
        """pycocotools ground truth, as the report describes it: every image, the kept boxes
        (clipped to the image), and crowd boxes (ignore regions)."""
        return coco_from_dict({**self._dataset, "annotations": self._scored})


def _clipped(ann: dict[str, Any], width: int, height: int) -> dict[str, Any]:
    """`ann` with its bbox clipped to the image (`ann` itself when the box lies inside)."""
    x, y, w, h = ann["bbox"]
    x0, y0 = min(max(x, 0), width), min(max(y, 0), height)
    x1, y1 = min(max(x + w, 0), width), min(max(y + h, 0), height)
    if (x0, y0, x1, y1) == (x, y, x + w, y + h):
        return ann
    return {**ann, "bbox": [x0, y0, x1 - x0, y1 - y0]}

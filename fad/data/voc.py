"""Pascal VOC detection datasets read from VOC<year>/{Annotations,ImageSets/Main,JPEGImages}.

Boxes: the XML's 1-based inclusive pixel corners become continuous xyxy
[xmin - 1, ymin - 1, xmax, ymax]. `difficult` objects are left out of the training targets (as
maskrcnn-benchmark's default use_difficult=False) and counted; they stay in `get_groundtruth`
with a flag, and in the `coco` ground truth as iscrowd=1 so COCO-style evaluation ignores them.
The other boxes are clipped to the image and those <= 1 px wide or high dropped, in the training
targets and the evaluated ground truth alike, so evaluation scores what the report describes.
Objects of a class outside the 20 are dropped and counted. `image_id` is the dataset index.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO

from fad.data.coco import coco_from_dict
from fad.data.detection import (
    DetectionDataset,
    ImageRecord,
    Transforms,
    clean_boxes,
    finish_records,
    new_report,
)
from fad.errors import FadError
from fad.runtime.limits import check_regular_file

MAX_SIDE = 2**31 - 1

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip
_LABEL = {name: i + 1 for i, name in enumerate(VOC_CLASSES)}


@dataclass
class VOCAnnotation:
    """One parsed XML file: image size and every object of a known class."""

    width: int
    height: int
    boxes: np.ndarray  # float64[N, 4] xyxy
    labels: np.ndarray  # int64[N], 1..20
    difficult: np.ndarray  # bool[N]


def _text(node: ET.Element, tag: str, path: Path, where: str) -> str:
    child = node.find(tag)
    if child is None or child.text is None:
        raise FadError(f"{path}: {where} has no <{tag}>")
    return child.text.strip()


def _number(node: ET.Element, tag: str, path: Path, where: str) -> float:
    text = _text(node, tag, path, where)
    try:
        return float(text)
    except ValueError as exc:
        raise FadError(f"{path}: {where} <{tag}> is not a number: {text!r}") from exc


def _side(size: ET.Element, tag: str, path: Path) -> int:
    value = _number(size, tag, path, "<size>")
    if not (value.is_integer() and 1 <= value <= MAX_SIDE):
        raise FadError(f"{path}: <size> <{tag}> must be a whole number in [1, {MAX_SIDE}]")
    return int(value)


def parse_voc_xml(path: Path, report: dict[str, int]) -> VOCAnnotation:
    """Parse one VOC XML file; objects of unknown classes are counted and skipped."""
    if not path.exists():
        raise FadError(f"annotation file not found: {path}")
    check_regular_file(path, "annotation file")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise FadError(f"{path}: invalid XML ({exc})") from exc
    except RecursionError:
        raise FadError(f"{path}: invalid XML (nested too deeply)") from None
    size = root.find("size")
    if size is None:
        raise FadError(f"{path}: no <size>")
    width, height = (_side(size, tag, path) for tag in ("width", "height"))
    boxes, labels, difficult = [], [], []
    for k, obj in enumerate(root.iter("object")):
        where = f"object {k}"
        name = _text(obj, "name", path, where).lower()
        if name not in _LABEL:
            report["unknown_category"] += 1
            continue
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise FadError(f"{path}: {where} ({name}) has no <bndbox>")
        corners = [_number(bndbox, tag, path, where) for tag in ("xmin", "ymin", "xmax", "ymax")]
        boxes.append([corners[0] - 1, corners[1] - 1, corners[2], corners[3]])
        labels.append(_LABEL[name])
        flag = obj.find("difficult")
        difficult.append(flag is not None and (flag.text or "0").strip() == "1")
    return VOCAnnotation(
        width,
        height,
        np.array(boxes, dtype=np.float64).reshape(-1, 4),
        np.array(labels, dtype=np.int64),
        np.array(difficult, dtype=bool),
    )


def read_split(data_dir: Path, split: str) -> list[str]:
    """Image ids listed in ImageSets/Main/<split>.txt."""
    path = data_dir / "ImageSets" / "Main" / f"{split}.txt"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise FadError(f"VOC split file not found: {path}") from exc
    return [line.split()[0] for line in lines if line.strip()]


def _scored(ann: VOCAnnotation, easy_boxes: np.ndarray, keep: np.ndarray) -> VOCAnnotation:
    """`ann` as evaluation scores it: the kept easy boxes clipped (`easy_boxes`, chosen by
    `keep` among the easy objects), the difficult ones as they are, in the XML's order."""
    easy = np.flatnonzero(~ann.difficult)
    boxes = ann.boxes.copy()
    boxes[easy[keep]] = easy_boxes
    scored = ann.difficult.copy()
    scored[easy[keep]] = True
    return VOCAnnotation(
        ann.width, ann.height, boxes[scored], ann.labels[scored], ann.difficult[scored]
    )


class VOCDetection(DetectionDataset):
    """A VOC split (labels 1..20 in VOC_CLASSES order); same interface as COCODetection.

    Args:
        data_dir: the VOC<year> folder.
        split: name of ImageSets/Main/<split>.txt.
        train: training targets and skipping of images without a usable box.
        transforms: `(PIL image, target) -> (FloatTensor[3, H, W], target)`; None: to tensor.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        split: str,
        *,
        train: bool,
        transforms: Transforms | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.split = split
        report = new_report()
        self._groundtruth: dict[str, VOCAnnotation] = {}
        records = []
        for name in read_split(self.data_dir, split):
            ann = parse_voc_xml(self.data_dir / "Annotations" / f"{name}.xml", report)
            report["difficult"] += int(ann.difficult.sum())
            easy = ~ann.difficult
            boxes, keep = clean_boxes(ann.boxes[easy], ann.width, ann.height, report)
            labels = ann.labels[easy][keep]
            self._groundtruth[name] = _scored(ann, boxes, keep)
            records.append(ImageRecord(-1, f"{name}.jpg", ann.width, ann.height, boxes, labels))
        records = finish_records(records, report, train=train)
        for index, record in enumerate(records):
            record.image_id = index
        self.label_to_category_id = {i + 1: i + 1 for i in range(len(VOC_CLASSES))}
        super().__init__(
            self.data_dir / "JPEGImages",
            records,
            VOC_CLASSES,
            report,
            f"{self.data_dir}:{split}",
            train=train,
            transforms=transforms,
        )

    def get_groundtruth(self, index: int) -> dict[str, torch.Tensor]:
        """The objects of image `index` that evaluation scores, in the XML's order: boxes [N, 4]
        (clipped), labels [N], difficult [N] (ignored by the evaluation)."""
        ann = self._groundtruth[Path(self.records[index].file_name).stem]
        return {
            "boxes": torch.from_numpy(ann.boxes.astype(np.float32)),
            "labels": torch.from_numpy(ann.labels.copy()),
            "difficult": torch.from_numpy(ann.difficult.copy()),
        }

    @cached_property
    def coco(self) -> COCO:
        """In-memory pycocotools ground truth; difficult objects are iscrowd=1 (ignored)."""
        images: list[dict[str, Any]] = []
        annotations: list[dict[str, Any]] = []
        for index in range(len(self)):
            info = self.get_img_info(index)
            images.append(info)
            gt = self.get_groundtruth(index)
            for box, label, hard in zip(
                gt["boxes"].tolist(), gt["labels"].tolist(), gt["difficult"].tolist(), strict=True
            ):
                w, h = box[2] - box[0], box[3] - box[1]
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": index,
                        "category_id": label,
                        "bbox": [box[0], box[1], w, h],
                        "area": w * h,
                        "iscrowd": int(hard),
                    }
                )
        categories = [{"id": i + 1, "name": n} for i, n in enumerate(VOC_CLASSES)]
        return coco_from_dict(
            {"images": images, "annotations": annotations, "categories": categories}
        )

"""What COCO and VOC datasets share: per-image records, box cleaning, the report, __getitem__.

Boxes are xyxy in continuous pixel coordinates (a box covering pixel columns 3..7 spans
x0 = 3, x1 = 8), FloatTensor[N, 4]; labels are contiguous 1..K, Int64Tensor[N].
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from fad.data.image_io import read_image, to_tensor
from fad.errors import FadError

Target = dict[str, Any]
Transforms = Callable[[Image.Image, Target], tuple[torch.Tensor, Target]]

# report keys in the order report_text prints them, with their wording
_DROPPED = (
    ("crowd", "crowd"),
    ("difficult", "difficult"),
    ("degenerate", "degenerate"),
    ("unknown_category", "unknown-category"),
    ("unknown_image", "unknown-image"),
    ("duplicate_id", "duplicate-id"),
)
# dropped from training targets, but kept in evaluation as regions where a detection is neither
# right nor wrong (pycocotools' iscrowd, VOC's difficult)
_IGNORE_REGIONS = ("crowd", "difficult")


def new_report() -> dict[str, int]:
    """A zeroed report: kept totals, dropped annotations by reason, clipped and empty images."""
    keys = ["images", "boxes", "empty_images", "clipped"] + [key for key, _ in _DROPPED]
    return dict.fromkeys(keys, 0)


@dataclass
class ImageRecord:
    """One image and its cleaned training targets (boxes float32[N, 4] xyxy, labels int64[N])."""

    image_id: int
    file_name: str
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray


def clean_boxes(
    boxes: np.ndarray, width: int, height: int, report: dict[str, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Clip xyxy boxes float[N, 4] to the image; drop non-finite ones and those <= 1 px wide/high.

    Returns (clipped boxes float32[M, 4], keep bool[N]) and counts "clipped"/"degenerate".
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    finite = np.isfinite(boxes).all(axis=1)
    safe = np.where(finite[:, None], boxes, 0.0)
    clipped = safe.copy()
    clipped[:, 0::2] = clipped[:, 0::2].clip(0, width)
    clipped[:, 1::2] = clipped[:, 1::2].clip(0, height)
    sizes = clipped[:, 2:] - clipped[:, :2]
    keep = finite & (sizes > 1).all(axis=1)
    report["degenerate"] += int((~keep).sum())
    report["clipped"] += int((keep & (clipped != safe).any(axis=1)).sum())
    return clipped[keep].astype(np.float32), keep


class DetectionDataset(Dataset):
    """Base class: `records` indexed by position; `__getitem__` -> (FloatTensor[3, H, W], target).

    The target holds `boxes` FloatTensor[N, 4] (xyxy pixels), `labels` Int64Tensor[N] and
    `image_id` (int). `transforms(image, target)` takes the PIL image; without transforms the
    image is only converted to a tensor in [0, 1].
    """

    def __init__(
        self,
        img_dir: str | os.PathLike[str],
        records: Sequence[ImageRecord],
        class_names: Sequence[str],
        report: dict[str, int],
        source: str,
        *,
        train: bool,
        transforms: Transforms | None = None,
    ) -> None:
        self.img_dir = Path(img_dir)
        self.records = list(records)
        self.class_names = list(class_names)
        self.report = report
        self.source = source
        self.train = train
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.records)

    @property
    def image_ids(self) -> list[int]:
        return [record.image_id for record in self.records]

    def get_img_info(self, index: int) -> dict[str, Any]:
        """{"height", "width", "id", "file_name"} of image `index`, from the annotations."""
        record = self.records[index]
        return {
            "height": record.height,
            "width": record.width,
            "id": record.image_id,
            "file_name": record.file_name,
        }

    def report_text(self) -> str:
        """One line: what was kept, skipped, dropped (by reason) and clipped.

        In evaluation mode it describes exactly the ground truth that is scored: the boxes
        kept (clipped ones clipped), and the crowd / difficult objects kept as ignore regions.
        """
        r = self.report
        mode = "train" if self.train else "eval"
        empty = "skipped" if self.train else "kept"
        parts = [
            f"{self.source} ({mode}): {r['images']} images, {r['boxes']} boxes",
            f"{r['empty_images']} images without usable boxes {empty}",
        ]
        ignored = () if self.train else _IGNORE_REGIONS
        dropped = [f"{r[k]} {word}" for k, word in _DROPPED if r.get(k) and k not in ignored]
        parts.append("dropped " + (", ".join(dropped) if dropped else "none"))
        parts.append(f"clipped {r['clipped']}")
        kept = [f"{r[k]} {word}" for k, word in _DROPPED if r.get(k) and k in ignored]
        if kept:
            parts.append(", ".join(kept) + " kept as ignore regions")
        return "; ".join(parts)

    def load_image(self, index: int) -> Image.Image:
        """Image `index` as training reads it; FadError when missing, corrupt or mis-sized."""
        return self._load_image(self.records[index])

    def _load_image(self, record: ImageRecord) -> Image.Image:
        """Read the image; fall back to the raw orientation when only that matches the size."""
        path = self.img_dir / record.file_name
        image = read_image(path)
        expected = (record.width, record.height)
        if image.size != expected:
            raw = read_image(path, apply_exif=False)
            if raw.size != expected:
                raise FadError(
                    f"image {path} is {image.size[0]}x{image.size[1]} but its annotation says "
                    f"{record.width}x{record.height}"
                )
            image = raw
        return image

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        record = self.records[index]
        image = self._load_image(record)
        target: Target = {
            "boxes": torch.from_numpy(record.boxes.copy()),
            "labels": torch.from_numpy(record.labels.copy()),
            "image_id": record.image_id,
        }
        if self.transforms is None:
            return to_tensor(image), target
        return self.transforms(image, target)


def finish_records(
    records: list[ImageRecord], report: dict[str, int], *, train: bool
) -> list[ImageRecord]:
    """Count kept images/boxes and empty images; in training drop images without boxes."""
    empty = [record for record in records if len(record.boxes) == 0]
    report["empty_images"] = len(empty)
    if train:
        records = [record for record in records if len(record.boxes) > 0]
    report["images"] = len(records)
    report["boxes"] = sum(len(record.boxes) for record in records)
    return records

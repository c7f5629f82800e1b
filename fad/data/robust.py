"""Training data that survives unreadable images.

In training a corrupt or missing image is skipped, not fatal: `SkipUnreadable` replaces sample i
by the first readable one among i + 1, i + 2, ... (wrapping around). The choice depends only on the
files, so a resumed run sees the same batches as an uninterrupted one. The skipped images travel
to the main process inside the target (key `SKIPPED`), where `BadImageBudget` counts the distinct
ones this process has met, logs each path, and stops the run (on every process together) once more
than `max_fraction` of the training images are unreadable. Missing files are counted up front.

Evaluation and prediction do not use this module: there an unreadable image is a FadError.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset

from fad.data.detection import DetectionDataset
from fad.errors import FadError
from fad.runtime.distributed import any_across_processes, is_distributed

log = logging.getLogger("fad")

SKIPPED = "skipped_images"  # target key: [(dataset index, reason), ...] skipped for this sample
_LOGGED_PATHS = 20  # unreadable images logged one by one; later ones are only counted


def bad_image_limit(total: int, max_fraction: float) -> int:
    """The most unreadable images a run of `total` images tolerates (`max_fraction` in [0, 1))."""
    if not 0 <= max_fraction < 1:
        raise FadError(f"DATALOADER.MAX_BAD_IMAGE_FRACTION must be in [0, 1), got {max_fraction}")
    return math.floor(max_fraction * total + 1e-9)


def missing_images(datasets: Sequence[DetectionDataset]) -> dict[int, str]:
    """{index in the concatenation: reason} for every training image file that does not exist."""
    missing: dict[int, str] = {}
    start = 0
    for dataset in datasets:
        for i in range(len(dataset)):
            path = Path(dataset.img_dir) / dataset.get_img_info(i)["file_name"]
            if not path.is_file():
                missing[start + i] = f"image not found: {path}"
        start += len(dataset)
    return missing


def _placeholder(skipped: list[tuple[int, str]]) -> tuple[torch.Tensor, dict[str, Any]]:
    """Stands in for a sample when too many images in a row are unreadable; the budget stops the
    run on the batch holding it, before any model sees it."""
    target = {
        "boxes": torch.zeros(0, 4),
        "labels": torch.zeros(0, dtype=torch.int64),
        "image_id": -1,
        SKIPPED: skipped,
    }
    return torch.zeros(3, 1, 1), target


class SkipUnreadable(Dataset):
    """A training dataset in which an unreadable sample is replaced by the next readable one.

    Args:
        dataset: the concatenated training sets; `dataset[i]` raises FadError when image i
            cannot be read.
        max_skips: after this many unreadable images in a row, return a placeholder (more than
            the budget allows, so the run stops).
        known_bad: {index: reason} already known to be unreadable (e.g. missing files).
    """

    def __init__(
        self, dataset: Dataset, max_skips: int, known_bad: dict[int, str] | None = None
    ) -> None:
        if not 1 <= max_skips <= len(dataset):
            raise FadError(f"max_skips must be in 1..{len(dataset)}, got {max_skips}")
        self.dataset = dataset
        self.max_skips = max_skips
        self.bad = dict(known_bad or {})  # this process's unreadable indices

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        skipped: list[tuple[int, str]] = []
        for offset in range(self.max_skips):
            i = (index + offset) % len(self.dataset)
            if i not in self.bad:
                try:
                    image, target = self.dataset[i]
                except FadError as exc:
                    self.bad[i] = str(exc)
                else:
                    return image, ({**target, SKIPPED: skipped} if skipped else target)
            skipped.append((i, self.bad[i]))
        return _placeholder(skipped)


class BadImageBudget:
    """Counts the distinct unreadable training images this process has met; too many stop the run."""

    def __init__(self, total: int, max_fraction: float) -> None:
        self.total = total
        self.max_fraction = max_fraction
        self.limit = bad_image_limit(total, max_fraction)
        self.bad: dict[int, str] = {}

    def add(self, index: int, reason: str) -> None:
        if index in self.bad:
            return
        self.bad[index] = reason
        if len(self.bad) <= _LOGGED_PATHS:
            log.warning(
                "skipping unreadable training image (%d of %d so far, %d tolerated): %s",
                len(self.bad),
                self.total,
                self.limit,
                reason,
            )
        if len(self.bad) == _LOGGED_PATHS:
            log.warning("further unreadable training images are counted but not logged")

    def over(self) -> bool:
        return len(self.bad) > self.limit

    def error(self) -> FadError:
        allowed = f"DATALOADER.MAX_BAD_IMAGE_FRACTION ({self.max_fraction}) allows"
        if not self.over():
            return FadError(
                f"another process met more unreadable training images than {allowed}; "
                "its error names them"
            )
        example = next(iter(self.bad.values()))
        return FadError(
            f"{len(self.bad)} of {self.total} training images could not be read, more than "
            f"{allowed}; e.g. {example}; fix the files or remove them from the annotations"
        )

    def check(self, targets: Sequence[dict[str, Any]]) -> None:
        """Take the skipped images out of a batch's targets, count them, stop if over budget."""
        for target in targets:
            for index, reason in target.pop(SKIPPED, ()):
                self.add(index, reason)
        over = self.over()
        if is_distributed():
            over = any_across_processes(over, _collective_device())
        if over:
            raise self.error()


def _collective_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


class CountingLoader:
    """A training DataLoader whose batches pass through a `BadImageBudget` (one per process)."""

    def __init__(self, loader: DataLoader, budget: BadImageBudget) -> None:
        self.loader = loader
        self.budget = budget

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[list[torch.Tensor], list[dict[str, Any]]]]:
        for images, targets in self.loader:
            self.budget.check(targets)
            yield images, targets


def robust_training_set(
    datasets: Sequence[DetectionDataset], dataset: Dataset, max_fraction: float
) -> tuple[SkipUnreadable, BadImageBudget]:
    """Wrap the concatenation `dataset` of `datasets`; missing files are counted (and may stop
    the run) right away."""
    budget = BadImageBudget(len(dataset), max_fraction)
    missing = missing_images(datasets)
    for index, reason in missing.items():
        budget.add(index, reason)
    if budget.over():  # the same files on every process: no collective needed
        raise budget.error()
    return SkipUnreadable(dataset, budget.limit + 1, missing), budget

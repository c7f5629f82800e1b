"""Training data that survives unreadable images.

In training a corrupt or missing image is skipped, not fatal: `SkipUnreadable` replaces sample i
by the first readable one among i + 1, i + 2, ... (wrapping around). The choice depends only on the
files, so a resumed run sees the same batches as an uninterrupted one. The skipped images travel
to the main process inside the target (key `SKIPPED`), where `BadImageBudget` counts the distinct
ones met by every process (each batch, the processes exchange the images they newly met), logs
each path, and stops the run (on every process together) once more than `max_fraction` of the
training images are unreadable. Missing files, and degenerate images (too elongated for the
model's resize: `fad.data.transforms.degenerate_reason`), are counted up front and never read.
`unreadable_images` opens every image of a set ahead of any run (`fad data check`).

Evaluation and prediction do not use this module: there an unreadable image is a FadError.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset

from fad.data.detection import DetectionDataset
from fad.data.transforms import degenerate_reason
from fad.errors import FadError
from fad.runtime.distributed import all_gather_objects, all_reduce_sum, is_distributed

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
                kind = "is not a regular file" if path.exists() else "not found"
                missing[start + i] = f"image {kind}: {path}"
        start += len(dataset)
    return missing


def degenerate_images(
    datasets: Sequence[DetectionDataset], resize: tuple[int, int] | None
) -> dict[int, str]:
    """{index in the concatenation: reason} for every image too elongated for a detector that
    resizes to `resize` = (smallest min_size, max_size), by its annotated size (none if None)."""
    found: dict[int, str] = {}
    start = 0
    for dataset in datasets:
        for i in range(len(dataset)):
            info = dataset.get_img_info(i)
            reason = degenerate_reason(info["width"], info["height"], resize)
            if reason:
                found[start + i] = (
                    f"degenerate image {Path(dataset.img_dir) / info['file_name']}: {reason}"
                )
        start += len(dataset)
    return found


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


def unreadable_images(
    dataset: DetectionDataset, progress: Callable[[Iterable[int]], Iterable[int]] = iter
) -> dict[int, str]:
    """{index: reason} for every image of `dataset` that cannot be read as training would read
    it (missing, corrupt, or not the size its annotation says); opens them all."""
    bad: dict[int, str] = {}
    for index in progress(range(len(dataset))):
        try:
            dataset.load_image(index)
        except FadError as exc:
            bad[index] = str(exc)
    return bad


class BadImageBudget:
    """Counts the distinct unreadable training images met by all processes; too many stop the run."""

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
                "skipping %s training image (%d of %d so far, %d tolerated): %s",
                "degenerate" if reason.startswith("degenerate") else "unreadable",
                len(self.bad),
                self.total,
                self.limit,
                reason,
            )
        if len(self.bad) == _LOGGED_PATHS:
            log.warning("further skipped training images are counted but not logged")

    def over(self) -> bool:
        return len(self.bad) > self.limit

    def error(self) -> FadError:
        allowed = f"DATALOADER.MAX_BAD_IMAGE_FRACTION ({self.max_fraction}) allows"
        example = next(iter(self.bad.values()))
        return FadError(
            f"{len(self.bad)} of {self.total} training images could not be read or used, more than "
            f"{allowed}; e.g. {example}; fix the files or remove them from the annotations"
        )

    def check(self, targets: Sequence[dict[str, Any]]) -> None:
        """Take the skipped images out of a batch's targets, count them with those the other
        processes met, stop (every process alike) if over budget."""
        met = [item for target in targets for item in target.pop(SKIPPED, ())]
        new = [(index, reason) for index, reason in met if index not in self.bad]
        if is_distributed():
            new = _from_every_process(new)
        for index, reason in new:
            self.add(index, reason)
        if self.over():
            raise self.error()


def _from_every_process(new: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Every process's newly met images, in rank order (one small all-reduce per batch; the
    lists themselves travel only when some process met one)."""
    count = all_reduce_sum(torch.tensor([len(new)], device=_collective_device()))
    if int(count.item()) == 0:
        return []
    return [item for part in all_gather_objects(new) for item in part]


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
    datasets: Sequence[DetectionDataset],
    dataset: Dataset,
    max_fraction: float,
    resize: tuple[int, int] | None = None,
) -> tuple[SkipUnreadable, BadImageBudget]:
    """Wrap the concatenation `dataset` of `datasets`; missing files and images degenerate under
    `resize` are counted (and may stop the run) right away."""
    budget = BadImageBudget(len(dataset), max_fraction)
    missing = {**degenerate_images(datasets, resize), **missing_images(datasets)}
    for index, reason in sorted(missing.items()):
        budget.add(index, reason)
    if budget.over():  # the same files on every process: no collective needed
        raise budget.error()
    return SkipUnreadable(dataset, budget.limit + 1, missing), budget

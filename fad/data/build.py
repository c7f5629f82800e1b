"""Build datasets from catalog names and the training / test DataLoaders over them.

Loaders yield `(images, targets)`: a list of FloatTensor[3, H, W] in [0, 1] (sizes differ) and a
list of target dicts with `boxes` [N, 4] xyxy, `labels` [N] in 1..K and `image_id`.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import BatchSampler, ConcatDataset, DataLoader

from fad.data.catalog import DatasetSpec, resolve
from fad.data.coco import COCODetection
from fad.data.detection import DetectionDataset
from fad.data.robust import CountingLoader, robust_training_set
from fad.data.samplers import InferenceSampler, IterationBatchSampler
from fad.data.transforms import build_transforms
from fad.data.voc import VOCDetection
from fad.errors import FadError


def build_dataset(spec: DatasetSpec, *, train: bool, flip_prob: float = 0.5) -> DetectionDataset:
    """The COCO or VOC dataset a catalog spec points at, with train/test transforms."""
    transforms = build_transforms(train, flip_prob)
    if spec.kind == "voc":
        assert spec.data_dir is not None and spec.split is not None
        return VOCDetection(spec.data_dir, spec.split, train=train, transforms=transforms)
    assert spec.ann_file is not None
    return COCODetection(spec.img_dir, spec.ann_file, train=train, transforms=transforms)


def build_datasets(
    names: Sequence[str],
    *,
    train: bool,
    flip_prob: float = 0.5,
    root: str | os.PathLike[str] | None = None,
) -> list[DetectionDataset]:
    """One dataset per catalog name (or IMG_DIR@ANN_JSON); see `fad.data.catalog`."""
    if not names:
        raise FadError("no dataset names given")
    return [build_dataset(resolve(n, root), train=train, flip_prob=flip_prob) for n in names]


def collate(
    batch: Sequence[tuple[torch.Tensor, dict[str, Any]]],
) -> tuple[list[torch.Tensor], list[dict[str, Any]]]:
    """[(image, target), ...] -> (list of images, list of targets)."""
    images = [image for image, _ in batch]
    targets = [target for _, target in batch]
    return images, targets


def _check_same_classes(datasets: Sequence[DetectionDataset]) -> None:
    first = datasets[0]
    for other in datasets[1:]:
        if other.class_names != first.class_names:
            raise FadError(
                f"training sets disagree on classes: {first.source} has {first.class_names}, "
                f"{other.source} has {other.class_names}"
            )


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader worker init: leave SIGINT/SIGTERM to the main process, which checkpoints and
    then stops the workers (a worker killed by a group-wide SIGTERM would crash the main one)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


@dataclass(frozen=True)
class TrainLoaderOptions:
    """How a training loader draws its batches.

    `images_per_batch` is per process (the global batch is images_per_batch * world_size);
    batches are those of iterations start_iter..max_iter-1 of a stream seeded `seed`;
    `resize` = (smallest min_size, max_size) of the model's resize, by which images too
    elongated to keep a side are skipped and counted (None: no such check).
    """

    images_per_batch: int
    max_iter: int
    start_iter: int = 0
    seed: int = 0
    num_workers: int = 0
    aspect_ratio_grouping: bool = True
    rank: int = 0
    world_size: int = 1
    max_bad_fraction: float = 0.01
    resize: tuple[int, int] | None = None


def build_train_loader(
    datasets: Sequence[DetectionDataset], options: TrainLoaderOptions
) -> CountingLoader:
    """Iteration-based loader over the concatenated training sets (see `TrainLoaderOptions`).

    Unreadable images are skipped (replaced by the next readable one) and counted; more than
    `max_bad_fraction` of the images unreadable stops the run (see `fad.data.robust`).
    """
    if not datasets:
        raise FadError("no training datasets")
    _check_same_classes(datasets)
    o = options
    group_ids = None
    if o.aspect_ratio_grouping:
        group_ids = [
            int(info["width"] >= info["height"])
            for dataset in datasets
            for info in map(dataset.get_img_info, range(len(dataset)))
        ]
    concat = ConcatDataset(datasets)
    sampler = IterationBatchSampler(
        len(concat),
        o.images_per_batch,
        o.max_iter,
        start_iter=o.start_iter,
        seed=o.seed,
        group_ids=group_ids,
        rank=o.rank,
        world_size=o.world_size,
    )
    robust, budget = robust_training_set(datasets, concat, o.max_bad_fraction, o.resize)
    # seeds the workers' torch RNG (flips); also keeps iteration from consuming the global RNG
    worker_seed = int(np.random.SeedSequence([o.seed, o.start_iter, o.rank]).generate_state(1)[0])
    generator = torch.Generator().manual_seed(worker_seed)
    loader = DataLoader(
        robust,
        batch_sampler=sampler,
        num_workers=o.num_workers,
        collate_fn=collate,
        generator=generator,
        worker_init_fn=ignore_stop_signals,
    )
    return CountingLoader(loader, budget)


def build_test_loader(
    dataset: DetectionDataset,
    *,
    images_per_batch: int,
    num_workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """Loader over this rank's share (indices rank, rank + W, ...) of `dataset`, in order."""
    if images_per_batch < 1:
        raise FadError(f"images per batch must be >= 1, got {images_per_batch}")
    sampler = InferenceSampler(len(dataset), rank=rank, world_size=world_size)
    return DataLoader(
        dataset,
        batch_sampler=BatchSampler(sampler, images_per_batch, drop_last=False),
        num_workers=num_workers,
        collate_fn=collate,
    )

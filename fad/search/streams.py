"""The two data streams of a search: batches for the weight step and batches for the alpha step.

Default (as the original FAD): both streams draw from all the training images, in different
orders (different sampler seeds). With ``holdout > 0`` (SOLVER.SEARCH.ALPHA_HOLDOUT, DARTS style)
that fraction of the training images is set aside for the alpha stream and the weight stream
uses the rest; the split is a deterministic function of the seed. Both streams are iteration
based and resumable: started at ``start_iter`` they yield exactly the batches an uninterrupted
run would. Fetching a batch never changes the global torch RNG: a data transform drawing from it
in the main process (DATALOADER.NUM_WORKERS 0) would otherwise shift the RNG state that a Ctrl-C
checkpoint, saved after the interrupted iteration's batch was fetched, records.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace

import numpy as np
import torch

from fad.data.build import TrainLoaderOptions, build_train_loader
from fad.data.detection import DetectionDataset
from fad.errors import FadError
from fad.runtime.seeding import SEED_STRIDE

ALPHA_SEED_OFFSET = SEED_STRIDE  # the alpha stream's seed is SEED + this
_HOLDOUT_TAG = 0x5EA4C4  # separates the split's RNG from the samplers'


def _subset(dataset: DetectionDataset, indices: Sequence[int]) -> DetectionDataset:
    """A shallow copy of ``dataset`` that holds only the records at ``indices``."""
    part = copy.copy(dataset)
    part.records = [dataset.records[i] for i in indices]
    return part


def holdout_split(
    datasets: Sequence[DetectionDataset], fraction: float, seed: int
) -> tuple[list[DetectionDataset], list[DetectionDataset]]:
    """(weight sets, alpha sets): ``fraction`` of all images, drawn by ``seed``, go to alphas."""
    total = sum(len(d) for d in datasets)
    held = round(fraction * total)
    if not 1 <= held <= total - 1:
        raise FadError(
            f"SOLVER.SEARCH.ALPHA_HOLDOUT {fraction} of {total} training images leaves "
            f"{held} for the alpha stream and {total - held} for the weights; both need >= 1"
        )
    order = np.random.default_rng([seed, _HOLDOUT_TAG]).permutation(total)
    to_alpha = np.zeros(total, dtype=bool)
    to_alpha[order[:held]] = True
    weight_sets, alpha_sets = [], []
    start = 0
    for dataset in datasets:
        mask = to_alpha[start : start + len(dataset)]
        start += len(dataset)
        weight_part = np.flatnonzero(~mask).tolist()
        alpha_part = np.flatnonzero(mask).tolist()
        if weight_part:
            weight_sets.append(_subset(dataset, weight_part))
        if alpha_part:
            alpha_sets.append(_subset(dataset, alpha_part))
    return weight_sets, alpha_sets


def _rng_isolated(batches: Iterable) -> Iterator:
    """``batches``, each fetched under a forked (then restored) global torch RNG."""
    iterator = iter(batches)
    while True:
        with torch.random.fork_rng(devices=[]):
            try:
                item = next(iterator)
            except StopIteration:
                return
        yield item


def search_streams(
    datasets: Sequence[DetectionDataset], holdout: float, options: TrainLoaderOptions
) -> Iterator[tuple[object, object]]:
    """Yield (weight batch, alpha batch) per iteration; each batch is (images, targets). The
    alpha stream is seeded SEED + ALPHA_SEED_OFFSET."""
    if holdout > 0:
        weight_sets, alpha_sets = holdout_split(datasets, holdout, options.seed)
    else:
        weight_sets, alpha_sets = list(datasets), list(datasets)
    weight_loader = build_train_loader(weight_sets, options)
    alpha_options = replace(options, seed=options.seed + ALPHA_SEED_OFFSET)
    alpha_loader = build_train_loader(alpha_sets, alpha_options)
    return _rng_isolated(zip(iter(weight_loader), iter(alpha_loader)))

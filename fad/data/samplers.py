"""Samplers: iteration-based training batches (resumable, grouped, sharded) and eval sharding.

Training sees one global stream of indices: epoch e is a permutation drawn from
`np.random.default_rng([seed, e])`, epochs are concatenated, and the stream is cut into global
batches of `batch_size * world_size` indices (within one aspect-ratio group when `group_ids` is
given: an index waits in its group's buffer until the buffer is full, possibly across epochs).
An index still waiting in its buffer when the next epoch draws it again is not added twice, so
a global batch holds distinct indices whenever its group has at least that many images (a
smaller group repeats indices to fill a batch). Rank r takes slice
[r * batch_size, (r + 1) * batch_size) of every global batch, so ranks are disjoint within it. Resuming at `start_iter` replays the stream and skips the first
`start_iter` batches: the remaining batches are exactly those of an uninterrupted run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from fad.errors import FadError


def _check_shard(rank: int, world_size: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise FadError(f"sampler: need 0 <= rank < world_size, got rank={rank} world={world_size}")


class IterationBatchSampler(Sampler[list[int]]):
    """Yields this rank's batch (a list of dataset indices) for iterations start_iter..max_iter-1.

    Args:
        num_samples: dataset length.
        batch_size: images per batch on this process.
        max_iter: total iterations of the run.
        start_iter: first iteration to yield (resume).
        seed: seed of the epoch permutations.
        group_ids: optional group per index (e.g. 0 portrait, 1 landscape); a batch never mixes
            groups.
        rank, world_size: distributed sharding of every global batch.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        max_iter: int,
        *,
        start_iter: int = 0,
        seed: int = 0,
        group_ids: Sequence[int] | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if num_samples < 1:
            raise FadError("sampler: the training set is empty")
        if batch_size < 1:
            raise FadError(f"sampler: batch size must be >= 1, got {batch_size}")
        if not 0 <= start_iter <= max_iter:
            raise FadError(
                f"sampler: need 0 <= start_iter <= max_iter, got {start_iter}, {max_iter}"
            )
        if group_ids is not None and len(group_ids) != num_samples:
            raise FadError(f"sampler: {len(group_ids)} group ids for {num_samples} samples")
        if seed < 0:
            raise FadError(f"sampler: seed must be >= 0, got {seed}")
        _check_shard(rank, world_size)
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.start_iter = start_iter
        self.seed = seed
        self.group_ids = list(group_ids) if group_ids is not None else None
        self.rank = rank
        self.world_size = world_size

    def global_batches(self) -> Iterator[list[int]]:
        """The endless stream of global batches (batch_size * world_size indices each)."""
        size = self.batch_size * self.world_size
        groups = self.group_ids if self.group_ids is not None else [0] * self.num_samples
        large = {g for g, n in Counter(groups).items() if n >= size}
        buffers: dict[int, list[int]] = {}
        epoch = 0
        while True:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.num_samples)
            for index in order.tolist():
                buffer = buffers.setdefault(groups[index], [])
                if index in buffer and groups[index] in large:
                    continue  # still waiting from the previous epoch: keep batches disjoint
                buffer.append(index)
                if len(buffer) == size:
                    yield buffer
                    buffers[groups[index]] = []
            epoch += 1

    def __iter__(self) -> Iterator[list[int]]:
        begin = self.rank * self.batch_size
        for iteration, batch in enumerate(self.global_batches()):
            if iteration >= self.max_iter:
                return
            if iteration >= self.start_iter:
                yield batch[begin : begin + self.batch_size]

    def __len__(self) -> int:
        return self.max_iter - self.start_iter


class InferenceSampler(Sampler[int]):
    """Rank r gets indices r, r + W, r + 2W, ... (no padding, no duplicates)."""

    def __init__(self, num_samples: int, *, rank: int = 0, world_size: int = 1) -> None:
        _check_shard(rank, world_size)
        self.indices = range(rank, num_samples, world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)

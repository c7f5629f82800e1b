"""Samplers: determinism, resume equivalence, aspect grouping, distributed disjointness."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from fad.data.samplers import InferenceSampler, IterationBatchSampler
from fad.errors import FadError

GROUPS = [i % 3 == 0 for i in range(23)]  # 8 of group 1, 15 of group 0


def _batches(**kwargs) -> list[list[int]]:
    args = {"num_samples": 23, "batch_size": 4, "max_iter": 30, "seed": 5}
    args.update(kwargs)
    return list(IterationBatchSampler(**args))


def test_fixed_iteration_count_and_epochs_cover_the_dataset():
    batches = _batches()
    assert len(batches) == 30 and all(len(b) == 4 for b in batches)
    stream = list(itertools.chain.from_iterable(batches))
    assert sorted(stream[:23]) == list(range(23))  # first epoch is a permutation
    assert stream[:20] != stream[23:43]  # epoch-wise reshuffle
    counts = Counter(stream)
    assert len(counts) == 23 and max(counts.values()) - min(counts.values()) <= 1
    assert _batches() == batches and _batches(seed=6) != batches


@pytest.mark.parametrize("grouped", [False, True])
def test_resume_yields_exactly_the_remaining_batches(grouped):
    groups = GROUPS if grouped else None
    full = _batches(group_ids=groups)
    resumed = IterationBatchSampler(23, 4, 30, start_iter=11, seed=5, group_ids=groups)
    assert len(resumed) == 19
    assert list(resumed) == full[11:]


def test_aspect_ratio_groups_are_never_mixed():
    batches = _batches(group_ids=GROUPS)
    assert all(len({GROUPS[i] for i in batch}) == 1 for batch in batches)
    assert {GROUPS[b[0]] for b in batches} == {True, False}


@pytest.mark.parametrize("grouped", [False, True])
def test_ranks_split_each_global_batch_disjointly(grouped):
    groups = GROUPS if grouped else None  # both groups hold at least a global batch (6)
    world = 2
    args = {"batch_size": 3, "group_ids": groups, "world_size": world}
    per_rank = [_batches(rank=r, **args) for r in range(world)]
    sampler = IterationBatchSampler(23, max_iter=30, seed=5, **args)
    for iteration, global_batch in zip(range(30), sampler.global_batches(), strict=False):
        parts = [per_rank[r][iteration] for r in range(world)]
        assert parts[0] + parts[1] == global_batch
        assert not set(parts[0]) & set(parts[1])
    assert _batches(rank=1, start_iter=9, **args) == per_rank[1][9:]


def test_a_dataset_smaller_than_a_batch_still_fills_batches():
    batches = list(IterationBatchSampler(3, 2, 4, world_size=2, rank=1))
    assert len(batches) == 4 and all(len(b) == 2 for b in batches)
    assert set(itertools.chain.from_iterable(batches)) <= {0, 1, 2}


def test_inference_sampler_strides_without_padding_or_duplicates():
    shards = [list(InferenceSampler(10, rank=r, world_size=3)) for r in range(3)]
    assert shards == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert len(InferenceSampler(10, rank=1, world_size=3)) == 3
    assert list(InferenceSampler(2, rank=2, world_size=3)) == []


def test_invalid_arguments_raise():
    with pytest.raises(FadError, match="rank"):
        IterationBatchSampler(10, 2, 5, rank=2, world_size=2)
    with pytest.raises(FadError, match="start_iter"):
        IterationBatchSampler(10, 2, 5, start_iter=6)
    with pytest.raises(FadError, match="empty"):
        IterationBatchSampler(0, 2, 5)
    with pytest.raises(FadError, match="group ids"):
        IterationBatchSampler(10, 2, 5, group_ids=[0, 1])
    with pytest.raises(FadError, match="rank"):
        InferenceSampler(10, rank=-1, world_size=2)

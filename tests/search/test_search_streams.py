"""The search's two data streams: default orders, the held-out alpha split, resumption."""

from __future__ import annotations

import pytest

from fad.data.build import TrainLoaderOptions, build_datasets
from fad.errors import FadError
from fad.search.streams import holdout_split, search_streams


@pytest.fixture
def datasets(tiny_shapes):
    return build_datasets([tiny_shapes["train"]], train=True, flip_prob=0.0)


def _ids(batch) -> list[int]:
    return [t["image_id"] for t in batch[1]]


def _stream(datasets, holdout=0.0, start_iter=0, max_iter=6, seed=0):
    options = TrainLoaderOptions(
        images_per_batch=2, max_iter=max_iter, start_iter=start_iter, seed=seed
    )
    return [(_ids(w), _ids(a)) for w, a in search_streams(datasets, holdout, options)]


def test_default_streams_draw_all_images_in_different_orders(datasets):
    pairs = _stream(datasets)
    weights = [i for w, _ in pairs for i in w]
    alpha = [i for _, a in pairs for i in a]
    everything = set(datasets[0].image_ids)
    assert set(weights) == set(alpha) == everything  # 6 batches of 2 cover 12 images
    assert weights != alpha


def test_holdout_split_is_disjoint_complete_and_deterministic(datasets):
    weight_sets, alpha_sets = holdout_split(datasets, 0.25, seed=3)
    weight_ids = {i for d in weight_sets for i in d.image_ids}
    alpha_ids = {i for d in alpha_sets for i in d.image_ids}
    assert len(alpha_ids) == 3 and len(weight_ids) == 9
    assert weight_ids | alpha_ids == set(datasets[0].image_ids)
    again = holdout_split(datasets, 0.25, seed=3)[1]
    assert {i for d in again for i in d.image_ids} == alpha_ids
    other = holdout_split(datasets, 0.25, seed=4)[1]
    assert {i for d in other for i in d.image_ids} != alpha_ids
    assert len(datasets[0]) == 12  # the original dataset is untouched


def test_holdout_streams_never_mix(datasets):
    weight_sets, alpha_sets = holdout_split(datasets, 0.5, seed=0)
    alpha_ids = {i for d in alpha_sets for i in d.image_ids}
    for w, a in _stream(datasets, holdout=0.5):
        assert set(a) <= alpha_ids and not set(w) & alpha_ids


@pytest.mark.parametrize("fraction", [0.01, 0.99])
def test_holdout_that_leaves_a_stream_empty_is_an_error(datasets, fraction):
    with pytest.raises(FadError, match="ALPHA_HOLDOUT"):
        holdout_split(datasets, fraction, seed=0)


def test_resumed_streams_continue_where_they_stopped(datasets):
    full = _stream(datasets, max_iter=8)
    resumed = _stream(datasets, start_iter=5, max_iter=8)
    assert resumed == full[5:]

"""One candidate selection for eager inference and export: the fixed-size top-k keeps what a
top-k of the thresholded candidates alone keeps, best first."""

from __future__ import annotations

import pytest
import torch

from fad.modeling.candidates import class_wise_nms, select_candidates


def _thresholded_then_topk(probs, ranking, score_thresh, topk):
    """The selection written with data-dependent shapes (the original's): threshold, then top-k."""
    candidate = probs > score_thresh
    values = ranking[candidate]
    location, label = candidate.nonzero(as_tuple=True)
    if values.numel() > topk:
        values, best = values.topk(topk)
        location, label = location[best], label[best]
    return location, label, values


@pytest.mark.parametrize("topk", [3, 7, 1000])
def test_the_fixed_size_selection_keeps_the_thresholded_top_k(topk):
    torch.manual_seed(2)
    probs = torch.rand(40, 5)
    ranking = probs * torch.rand(40, 1)  # FCOS: probability x centerness
    location, label, values = select_candidates(probs, ranking, 0.3, topk)
    expected = _thresholded_then_topk(probs, ranking, 0.3, topk)
    assert len(values) == min(topk, int((probs > 0.3).sum()))
    assert sorted(zip(values.tolist(), location.tolist(), label.tolist())) == sorted(
        zip(expected[2].tolist(), expected[0].tolist(), expected[1].tolist())
    )
    assert torch.equal(values, values.sort(descending=True).values)  # best first
    assert torch.equal(ranking[location, label], values)


def test_nothing_above_the_threshold_gives_empty_candidates_and_nms():
    probs = torch.full((6, 3), 0.01)
    location, label, values = select_candidates(probs, probs, 0.05, 10)
    assert location.shape == label.shape == values.shape == (0,)
    assert class_wise_nms(torch.zeros(0, 4), values, label, 0.5).shape == (0,)


def test_class_wise_nms_suppresses_within_a_class_only():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    labels = torch.tensor([1, 1, 2])
    assert class_wise_nms(boxes, scores, labels, 0.5).tolist() == [0, 2]

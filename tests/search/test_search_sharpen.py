"""The entropy pressure (SOLVER.SEARCH.ENTROPY_WEIGHT): no preference of its own at uniform op
weights, a ramp from the first alpha step to the last, and a step that widens the preference the
alphas already have."""

from __future__ import annotations

import math

import pytest
import torch
from test_search_budget import OPTS  # a search head of 2-node cells, 32 channels

from fad.config import load_config
from fad.errors import FadError
from fad.modeling.build import build_detector
from fad.search.sharpen import EntropyPressure, mean_entropy
from fad.search_space.towers import search_towers


def _towers():
    model = build_detector(load_config(None, OPTS), 3, None, load_weights=False)
    return list(search_towers(model))


def test_uniform_weights_have_the_uniform_entropy_and_no_gradient():
    towers = _towers()
    with torch.no_grad():
        for tower in towers:
            for alpha in tower.alphas:
                alpha.zero_()
    pressure = EntropyPressure(weight=1.0, first=10, last=20)
    penalty = pressure.penalty(towers, 20)
    n_ops = towers[0].alphas[0].shape[1]
    assert penalty.item() == pytest.approx(len(towers) * math.log(n_ops), rel=1e-6)
    penalty.backward()
    assert all(float(a.grad.abs().max()) < 1e-7 for t in towers for a in t.alphas)


def test_the_ramp_runs_from_the_first_alpha_step_to_the_last():
    pressure = EntropyPressure(weight=0.5, first=10, last=20)
    assert [pressure.ramp(i) for i in (0, 10, 15, 20, 30)] == [0.0, 0.0, 0.5, 1.0, 1.0]
    towers = _towers()
    assert pressure.penalty(towers, 10).item() == 0.0
    full = pressure.penalty(towers, 20).item()
    assert pressure.penalty(towers, 15).item() == pytest.approx(full / 2)


def test_a_step_on_the_penalty_widens_the_preference_the_alphas_have():
    towers = _towers()
    leader = 3
    with torch.no_grad():
        for tower in towers:
            for alpha in tower.alphas:
                alpha.copy_(0.01 * torch.randn_like(alpha))
                alpha[:, leader] += 0.2
    before = [mean_entropy(t).item() for t in towers]
    params = [a for t in towers for a in t.alphas]
    optimizer = torch.optim.SGD(params, lr=100.0)
    for _ in range(5):
        optimizer.zero_grad()
        EntropyPressure(weight=1.0, first=0, last=1).penalty(towers, 1).backward()
        optimizer.step()
    after = [mean_entropy(t).item() for t in towers]
    assert all(a < b - 0.05 for a, b in zip(after, before, strict=True))
    for alpha in params:  # the leader led and leads by more; no other op overtook it
        weights = alpha.detach().softmax(-1)
        assert bool((weights.argmax(-1) == leader).all())


def test_a_negative_weight_is_refused():
    with pytest.raises(FadError, match="SOLVER.SEARCH.ENTROPY_WEIGHT must be >= 0"):
        load_config(None, ["SOLVER.SEARCH.ENTROPY_WEIGHT", "-1"])

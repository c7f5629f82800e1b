"""The genotype-vs-seed analysis: F by hand, a permutation p-value that separates a real
genotype effect from seed noise, and the errors for a design it cannot analyse."""

from __future__ import annotations

import numpy as np
import pytest

from fad.errors import FadError
from fad.evaluation.genotype_effect import (
    blocked_f_statistic,
    effect_sentence,
    f_statistic,
    genotype_effect,
)


def test_f_is_the_between_over_within_mean_square():
    values = np.array([[1.0, 3.0], [4.0, 6.0], [7.0, 11.0]])
    # means 2, 5, 9 (grand 16/3); between = 2 * sum((m - 16/3)^2) / 2; within = (2+2+8) / 3
    between = 2 * sum((m - 16 / 3) ** 2 for m in (2, 5, 9)) / 2
    assert float(f_statistic(values)) == pytest.approx(between / 4.0)
    assert float(f_statistic(np.array([[1.0, 1.0], [2.0, 2.0]]))) == float("inf")


def test_a_real_genotype_effect_is_found_and_seed_noise_is_not():
    rng = np.random.default_rng(3)
    strong = {f"g{i}": list(0.60 + 0.03 * i + 0.005 * rng.standard_normal(3)) for i in range(6)}
    effect = genotype_effect(strong)
    assert effect["p_value"] < 0.01 and effect["genotype_share"] > 0.9
    assert effect["genotype_std"] > 5 * effect["genotype_std_from_seeds"]
    assert "are larger than the training seeds'" in effect_sentence(effect)
    # the same seeds' noise, no genotype effect: the permutation test does not call one
    noise = {f"g{i}": list(0.68 + 0.02 * rng.standard_normal(3)) for i in range(6)}
    effect = genotype_effect(noise)
    assert effect["p_value"] > 0.05
    assert effect["seed_std"] == pytest.approx(
        np.sqrt(np.mean([np.var(v, ddof=1) for v in noise.values()]))
    )
    assert "not distinguishable from the training seeds'" in effect_sentence(effect)


def test_blocked_f_removes_each_seeds_shift_before_comparing_genotypes():
    values = np.array([[1.0, 4.0], [2.0, 4.0], [6.0, 10.0]])
    # rows 2.5, 3, 8 (grand 4.5); seeds 3, 6; residual = v - row - col + grand
    residual = values - values.mean(1, keepdims=True) - values.mean(0) + values.mean()
    between = 2 * sum((m - 4.5) ** 2 for m in (2.5, 3.0, 8.0)) / 2
    expected = between / ((residual**2).sum() / 2)
    assert float(blocked_f_statistic(values)) == pytest.approx(expected)
    # a seed shift alone leaves the blocked F unchanged
    shifted = values + np.array([0.0, 5.0])
    assert float(blocked_f_statistic(shifted)) == pytest.approx(expected)
    assert float(f_statistic(shifted)) != pytest.approx(float(f_statistic(values)))


def test_a_small_genotype_effect_under_large_seed_shifts_is_found_only_with_seeds_as_blocks():
    rng = np.random.default_rng(5)
    shifts = np.array([0.0, 0.04, -0.03, 0.02])  # every genotype moves with the seed
    aps = {
        f"g{i}": list(0.65 + 0.01 * i + shifts + 0.002 * rng.standard_normal(4)) for i in range(4)
    }
    effect = genotype_effect(aps)
    assert effect["p_value"] > 0.05  # the seeds' shifts swamp the one-way test
    assert effect["blocked_p_value"] < 0.01
    assert effect["seed_shift_std"] == pytest.approx(np.std(shifts, ddof=1), abs=0.002)
    assert effect["residual_std"] < 0.004
    sentence = effect_sentence(effect)
    assert "With each seed's shift removed" in sentence
    assert "are larger than the training seeds'" in sentence
    # an effect recorded before the blocked analysis existed is judged by its one-way p
    old = {k: v for k, v in effect.items() if not k.startswith(("blocked", "seed_shift", "resid"))}
    assert "not distinguishable" in effect_sentence(old)


def test_a_design_without_replicates_or_with_unequal_seeds_is_refused():
    with pytest.raises(FadError, match="same number"):
        genotype_effect({"a": [0.1, 0.2], "b": [0.3]})
    with pytest.raises(FadError, match="same number"):
        genotype_effect({"a": [0.1], "b": [0.3]})
    with pytest.raises(FadError, match=">= 2 genotypes"):
        genotype_effect({"a": [0.1, 0.2]})

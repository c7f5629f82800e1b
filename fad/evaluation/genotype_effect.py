"""Does the genotype matter more than the training seed? An analysis of variance of AP over
genotypes x training seeds, one-way and with the seed as a block, with permutation p-values.

A random control ranks a searched head among random genotypes by AP, but one training seed per
genotype cannot tell a better genotype from a luckier seed: on the embedded default one genotype's
AP moves by ± 0.014 over three seeds (pooled std), more than the random genotypes' means spread. `genotype_effect` puts
the two side by side: the seeds' spread within a genotype (pooled), the genotypes' spread of their
mean APs, the spread those means would have from the seeds alone (seed std / sqrt(seeds)), the
F statistic (between-genotype over within-genotype mean square) and the share of the AP variance
the genotype explains (intraclass correlation). The p-value is the fraction of random
reassignments of the APs to genotypes whose F is at least the observed one: no distribution is
assumed, and none of scipy is needed.

Every genotype is trained with the same seeds, and a seed shifts every genotype alike (measured:
seed 0 above seed 1 for all four genotypes of two studies), so the design is a complete block:
the blocked analysis (two-way, no interaction) removes each seed's shift before comparing the
genotypes, and its permutations reassign APs to genotypes within each seed. It is the verdict's
test (``blocked_p_value``); the one-way figures stay for the spreads they report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fad.errors import FadError

PERMUTATIONS = 10000
PERMUTATION_SEED = 0


def f_statistic(values: np.ndarray) -> np.ndarray:
    """F of a one-way ANOVA for `values` of shape (..., genotypes, seeds): mean square between
    genotypes over mean square within them (inf where the seeds agree exactly)."""
    groups, seeds = values.shape[-2:]
    means = values.mean(axis=-1)
    between = seeds * ((means - means.mean(axis=-1, keepdims=True)) ** 2).sum(-1) / (groups - 1)
    within = ((values - means[..., None]) ** 2).sum((-2, -1)) / (groups * (seeds - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(within > 0, between / np.where(within > 0, within, 1.0), np.inf)


def blocked_f_statistic(values: np.ndarray) -> np.ndarray:
    """F of a two-way ANOVA without interaction for `values` of shape (..., genotypes, seeds):
    the genotypes' mean square over the residual's once each seed's mean is removed."""
    groups, seeds = values.shape[-2:]
    rows = values.mean(axis=-1, keepdims=True)
    cols = values.mean(axis=-2, keepdims=True)
    grand = values.mean(axis=(-2, -1), keepdims=True)
    between = seeds * ((rows - grand) ** 2).sum((-2, -1)) / (groups - 1)
    residual = ((values - rows - cols + grand) ** 2).sum((-2, -1))
    residual = residual / ((groups - 1) * (seeds - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(residual > 0, between / np.where(residual > 0, residual, 1.0), np.inf)


def _p_value(observed: float, permuted: np.ndarray) -> float:
    return float((1 + (permuted >= observed).sum()) / (1 + permuted.size))


def genotype_effect(
    aps: Mapping[str, Sequence[float]], permutations: int = PERMUTATIONS
) -> dict[str, Any]:
    """The analysis of `aps` (genotype -> its AP per training seed; the same number of seeds,
    at least 2, for at least 2 genotypes); see the module doc for the fields."""
    counts = {len(v) for v in aps.values()}
    if len(aps) < 2 or len(counts) != 1 or min(counts) < 2:
        raise FadError(
            "a genotype effect needs >= 2 genotypes with the same number (>= 2) of seeds, got "
            + ", ".join(f"{name}: {len(v)}" for name, v in aps.items())
        )
    values = np.array([list(v) for v in aps.values()], dtype=np.float64)
    groups, seeds = values.shape
    within_var = float(values.var(axis=1, ddof=1).mean())
    means = values.mean(axis=1)
    between_var = float(means.var(ddof=1))
    observed = float(f_statistic(values))
    rng = np.random.default_rng(PERMUTATION_SEED)
    shuffled = rng.permuted(np.broadcast_to(values.ravel(), (permutations, values.size)), axis=1)
    permuted = f_statistic(shuffled.reshape(permutations, groups, seeds))
    genotype_var = max(between_var - within_var / seeds, 0.0)
    blocked = float(blocked_f_statistic(values))
    within_seed = rng.permuted(np.broadcast_to(values.T, (permutations, seeds, groups)), axis=2)
    blocked_permuted = blocked_f_statistic(within_seed.transpose(0, 2, 1))
    seed_means = values.mean(axis=0)
    residual = values - means[:, None] - seed_means[None, :] + values.mean()
    return {
        "genotypes": groups,
        "seeds": seeds,
        "seed_std": math.sqrt(within_var),
        "genotype_std": math.sqrt(between_var),
        "genotype_std_from_seeds": math.sqrt(within_var / seeds),
        "f": observed,
        "p_value": _p_value(observed, permuted),
        "genotype_share": genotype_var / (genotype_var + within_var)
        if genotype_var + within_var > 0
        else 0.0,
        "seed_shift_std": float(seed_means.std(ddof=1)),
        "residual_std": math.sqrt((residual**2).sum() / ((groups - 1) * (seeds - 1))),
        "blocked_f": blocked,
        "blocked_p_value": _p_value(blocked, blocked_permuted),
    }


def effect_sentence(effect: Mapping[str, Any]) -> str:
    """One line of markdown stating the analysis and what it means (the verdict: the blocked
    test; an effect from before the blocked analysis existed: the one-way one)."""
    p_value = effect.get("blocked_p_value", effect["p_value"])
    distinct = p_value < 0.05
    blocked = (
        f" With each seed's shift removed (seed means ± {effect['seed_shift_std']:.3f}; residual "
        f"± {effect['residual_std']:.3f}): F = {effect['blocked_f']:.2f}, permutation p = "
        f"{effect['blocked_p_value']:.2g} (APs reassigned within each seed)."
        if "blocked_p_value" in effect
        else ""
    )
    return (
        f"Genotype vs training seed ({effect['genotypes']} random genotypes x {effect['seeds']} "
        f"seeds): one genotype's AP varies by ± {effect['seed_std']:.3f} over the seeds "
        f"(pooled std); the genotypes' mean APs by ± {effect['genotype_std']:.3f}, against "
        f"± {effect['genotype_std_from_seeds']:.3f} from the seeds alone; F = {effect['f']:.2f}, "
        f"permutation p = {effect['p_value']:.2g}; the genotype explains "
        f"{100 * effect['genotype_share']:.0f} % of the AP variance.{blocked} **The genotypes' "
        "differences "
        + (
            f"are larger than the training seeds' (p = {p_value:.2g} < 0.05).**"
            if distinct
            else "are not distinguishable from the training seeds' at this budget (p >= 0.05): "
            "no search can be shown to beat random here without more seeds or a longer "
            "schedule.**"
        )
    )

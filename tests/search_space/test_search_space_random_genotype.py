"""Random genotypes: only valid cells of the space, drawn uniformly (a test on counts)."""

from __future__ import annotations

import math
from collections import Counter

import torch

from fad.search_space.genotype import validate_genotype
from fad.search_space.ops import SPACES
from fad.search_space.random_genotype import sample_genotype, space_size

OPS = ["std_conv_3x3", "sinSep_conv_3x3", "none"]


def _cell(genotype) -> tuple:
    return tuple(tuple(sorted(node, key=lambda e: e[1])) for node in genotype.normal)


def test_every_sample_is_a_valid_cell_without_none_and_with_distinct_inputs():
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):
        genotype = sample_genotype(3, SPACES["released"], generator)
        validate_genotype(genotype, num_nodes=3)
        for node in genotype.normal:
            assert all(op != "none" for op, _ in node)
            assert node[0][1] != node[1][1]


def test_samples_are_uniform_over_the_cells_of_a_small_space():
    # 2 nodes over 2 ops: node 0 has 1 input pair, node 1 has 3; 2^2 ops each: 4 * 12 = 48 cells
    assert space_size(2, OPS) == 48
    generator = torch.Generator().manual_seed(1)
    draws = 48 * 200
    counts = Counter(_cell(sample_genotype(2, OPS, generator)) for _ in range(draws))
    assert len(counts) == 48
    expected = draws / 48
    chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
    # 47 degrees of freedom: the 99.9 % quantile is 82.7; a sampler favouring one input pair or op
    # (e.g. by ordered pairs with repeats) lands far above
    assert chi2 < 82.7, chi2
    assert max(counts.values()) < expected * 1.5 and min(counts.values()) > expected * 0.5


def test_the_same_generator_seed_draws_the_same_genotypes():
    draws = [
        [str(sample_genotype(3, SPACES["released"], g)) for _ in range(5)]
        for g in (torch.Generator().manual_seed(7), torch.Generator().manual_seed(7))
    ]
    assert draws[0] == draws[1] and len(set(draws[0])) == 5
    assert math.isclose(space_size(3, SPACES["released"]), 1 * 3 * 6 * 100**3)

"""Random members of the search space: the control a searched genotype is measured against.

A cell of the space has, per node k, two edges from distinct states among 0 .. k + 1, each with an
op other than ``none``; the order of a node's two edges does not change the cell (the node sums
them). `sample_genotype` draws every such cell with the same probability: per node an unordered
pair of distinct inputs uniformly, and each edge's op uniformly, independently.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import torch

from fad.search_space.genotype import EDGES_PER_NODE, INPUT_NODES, Genotype
from fad.search_space.ops import NONE


def _pick(items: Sequence, generator: torch.Generator):
    return items[int(torch.randint(len(items), (1,), generator=generator))]


def sample_genotype(
    num_nodes: int, op_names: Sequence[str], generator: torch.Generator
) -> Genotype:
    """One cell of ``num_nodes`` nodes over ``op_names`` (``none`` excluded), uniformly."""
    ops = [name for name in op_names if name != NONE]
    normal = []
    for k in range(num_nodes):
        inputs = _pick(list(combinations(range(INPUT_NODES + k), EDGES_PER_NODE)), generator)
        normal.append([(_pick(ops, generator), index) for index in inputs])
    return Genotype(normal=normal, normal_concat=range(INPUT_NODES, INPUT_NODES + num_nodes))


def space_size(num_nodes: int, op_names: Sequence[str]) -> int:
    """How many distinct cells the space holds."""
    ops = len([name for name in op_names if name != NONE])
    total = 1
    for k in range(num_nodes):
        n = INPUT_NODES + k
        total *= n * (n - 1) // 2 * ops**EDGES_PER_NODE
    return total

"""The convergence figures on known op weights: entropy against uniform, the kept ops' weights and
margins, the converged / near-uniform flags, and since when the genotype is unchanged."""

from __future__ import annotations

import math

import pytest

from fad.search.convergence import settled_since, summary, tower_convergence
from fad.search_space.genotype import Genotype

A, B = "std_conv_3x3", "sinSep_conv_3x3"
OPS = [A, B, "std_conv_3x3_x2", "none"]
UNIFORM = [0.25] * 4


def _genotype(edges: list[list[tuple[str, int]]]) -> str:
    return str(Genotype(normal=edges, normal_concat=range(2, 2 + len(edges))))


def test_a_uniform_tower_is_flagged_near_uniform():
    rows = [UNIFORM, UNIFORM]
    f = tower_convergence(rows, OPS, _genotype([[(A, 0), (B, 1)]]))
    assert f["mean_entropy"] == pytest.approx(math.log(4)) == pytest.approx(f["uniform_entropy"])
    assert f["entropy_ratio"] == pytest.approx(1.0) and f["min_top_over_uniform"] == 1.0
    assert f["near_uniform"] and not f["converged"]
    assert "NEAR UNIFORM" in summary({"box": f})


def test_a_decided_tower_is_converged_with_its_kept_ops_and_margins():
    rows = [[0.9, 0.05, 0.03, 0.02], [0.02, 0.8, 0.1, 0.08]]
    f = tower_convergence(rows, OPS, _genotype([[(A, 0), (B, 1)]]))
    assert f["converged"] and not f["near_uniform"]
    first, second = f["kept_edges"]
    assert (first["op"], first["weight"], first["runner_up"]) == (A, 0.9, B)
    assert first["margin"] == pytest.approx(0.85) and second["margin"] == pytest.approx(0.7)
    assert f["min_top_over_uniform"] == pytest.approx(3.2)
    expected = [-sum(p * math.log(p) for p in row) for row in rows]
    assert f["mean_entropy"] == pytest.approx(sum(expected) / 2)


def test_one_weak_kept_edge_keeps_a_tower_from_converging():
    rows = [[0.97, 0.01, 0.01, 0.01], [0.97, 0.01, 0.01, 0.01], [0.3, 0.3, 0.2, 0.2]]
    genotype = _genotype([[(A, 0), (A, 1)], [(A, 0), (A, 1)]])  # node 1 reads rows 2, 3
    with pytest.raises(IndexError):  # node 1 has 3 edges: rows 2..4
        tower_convergence(rows, OPS, genotype)
    rows.append([0.97, 0.01, 0.01, 0.01])
    rows.append([0.97, 0.01, 0.01, 0.01])
    f = tower_convergence(rows, OPS, genotype)
    assert f["min_top_over_uniform"] == pytest.approx(1.2) and not f["converged"]
    assert f["near_uniform"]  # a kept op below 1.25x uniform


def test_settled_since_is_the_first_snapshot_of_the_final_genotypes():
    snaps = [
        {"iteration": 0, "genotypes": {"box": "x"}},
        {"iteration": 20, "genotypes": {"box": "y"}},
        {"iteration": 40, "genotypes": {"box": "x"}},
        {"iteration": 60, "genotypes": {"box": "x"}},
    ]
    assert settled_since(snaps) == 40
    assert settled_since([]) is None

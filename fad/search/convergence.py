"""How far a search has converged, read off one alpha-history snapshot (plain data).

Per tower: the mean entropy of the edges' op weights against a uniform distribution's (ln n_ops,
2.398 nats for the 11 ops of the released space), and for each edge the genotype keeps, the
weight of its op against the uniform weight 1 / n_ops and its margin over the runner-up. The rule
(documented in docs/search.md):

- **converged**: mean entropy at most `CONVERGED_ENTROPY` x uniform's and every kept op at least
  `CONVERGED_TOP` x the uniform weight;
- **near uniform**: mean entropy above `NEAR_UNIFORM_ENTROPY` x uniform's or some kept op below
  `NEAR_UNIFORM_TOP` x the uniform weight: the genotype is read off differences the data did not
  make, and the log and the report say so.
"""

from __future__ import annotations

import math
from typing import Any

from fad.search_space.genotype import INPUT_NODES, parse_genotype

CONVERGED_ENTROPY = 0.8
CONVERGED_TOP = 2.0
NEAR_UNIFORM_ENTROPY = 0.95
NEAR_UNIFORM_TOP = 1.25


def entropy(row: list[float]) -> float:
    """The entropy (nats) of one edge's op weights."""
    return -sum(p * math.log(p) for p in row if p > 0)


def _edge_row(node: int, index: int) -> int:
    """The row of edge (node, input index) in a tower's rows (node k has 2 + k edges)."""
    return sum(INPUT_NODES + k for k in range(node)) + index


def kept_edges(rows: list[list[float]], op_names: list[str], genotype: str) -> list[dict]:
    """For each edge of `genotype`: its op's weight, the runner-up op and the margin."""
    kept = []
    for node, edges in enumerate(parse_genotype(genotype).normal):
        for op, index in edges:
            row = rows[_edge_row(node, index)]
            top = row[op_names.index(op)]
            others = sorted(
                ((p, name) for p, name in zip(row, op_names, strict=True) if name != op),
                reverse=True,
            )
            kept.append(
                {
                    "node": node,
                    "input": index,
                    "op": op,
                    "weight": top,
                    "runner_up": others[0][1],
                    "margin": top - others[0][0],
                }
            )
    return kept


def tower_convergence(rows: list[list[float]], op_names: list[str], genotype: str) -> dict:
    """The convergence figures of one tower (see the module doc)."""
    uniform = math.log(len(op_names))
    mean = sum(entropy(row) for row in rows) / max(len(rows), 1)
    kept = kept_edges(rows, op_names, genotype)
    min_top = min(edge["weight"] for edge in kept) * len(op_names)
    ratio = mean / uniform
    return {
        "mean_entropy": mean,
        "uniform_entropy": uniform,
        "entropy_ratio": ratio,
        "min_top_over_uniform": min_top,
        "kept_edges": kept,
        "converged": ratio <= CONVERGED_ENTROPY and min_top >= CONVERGED_TOP,
        "near_uniform": ratio > NEAR_UNIFORM_ENTROPY or min_top < NEAR_UNIFORM_TOP,
    }


def snapshot_convergence(snapshot: dict[str, Any], towers: dict[str, Any]) -> dict[str, dict]:
    """{role: tower_convergence} of an alpha-history snapshot (`towers`: the history's)."""
    return {
        role: tower_convergence(rows, towers[role]["op_names"], snapshot["genotypes"][role])
        for role, rows in snapshot["weights"].items()
    }


def summary(figures: dict[str, dict]) -> str:
    """One line: per tower the entropy against uniform and the weakest kept op."""
    parts = []
    for role, f in figures.items():
        flag = "converged" if f["converged"] else "NEAR UNIFORM" if f["near_uniform"] else "moving"
        parts.append(
            f"{role} entropy {f['mean_entropy']:.3f}/{f['uniform_entropy']:.3f} nats "
            f"({f['entropy_ratio']:.2f}), weakest kept op {f['min_top_over_uniform']:.2f}x uniform"
            f" [{flag}]"
        )
    return "; ".join(parts)


def settled_since(snapshots: list[dict[str, Any]]) -> int | None:
    """The first recorded iteration from which the genotypes never changed (None: no snapshot)."""
    traced = [s for s in snapshots if "genotypes" in s]
    if not traced:
        return None
    since = traced[-1]["iteration"]
    for snapshot in reversed(traced):
        if snapshot["genotypes"] != traced[-1]["genotypes"]:
            break
        since = snapshot["iteration"]
    return since

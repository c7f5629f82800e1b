"""The alpha history of a search: softmaxed alphas per edge over the iterations, as plain data.

A snapshot holds, per tower ("box", "cls"), one row per edge: softmax(alpha) over the ops. Edges
are listed node by node (node k reads states 0 .. k + 1, so a cell of n nodes has
2 + 3 + ... + (n + 1) edges), and the genotypes derived at that iteration (from which
`genotype_stability` measures how settled the search is). The history
travels inside checkpoints (so a resumed run continues it exactly) and is written as
``alpha_history.json`` (machine-readable) and ``alphas.log`` (human-readable).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fad.errors import FadError
from fad.runtime.atomic import atomic_write_text
from fad.search.convergence import snapshot_convergence, summary
from fad.search_space.genotype import INPUT_NODES, parse_genotype
from fad.search_space.towers import SearchTower, search_towers
from fad.viz.genotype_plot import INPUT_NAMES

FORMAT_VERSION = 1


def edge_labels(num_nodes: int) -> list[str]:
    """'node k <- source' for every edge of a cell, in alpha row order."""
    labels = []
    for k in range(num_nodes):
        for state in range(INPUT_NODES + k):
            source = INPUT_NAMES[state] if state < INPUT_NODES else f"node {state - INPUT_NODES}"
            labels.append(f"node {k} <- {source}")
    return labels


def _towers(model: nn.Module) -> dict[str, SearchTower]:
    return {tower.role: tower for tower in search_towers(model)}


def edge_weights(tower: SearchTower) -> list[list[float]]:
    """softmax(alpha) per edge: [num_edges][num_ops] floats."""
    rows = [F.softmax(alpha.detach().float(), dim=-1).cpu() for alpha in tower.alphas]
    return torch.cat(rows).tolist()


def genotype_edges(genotypes: dict[str, str]) -> set[tuple[str, int, str, int]]:
    """{(tower, node, op, input)} of genotype texts (edge order within a node disregarded)."""
    return {
        (role, node, op, index)
        for role, text in genotypes.items()
        for node, edges in enumerate(parse_genotype(text).normal)
        for op, index in edges
    }


class AlphaHistory:
    """Snapshots of softmaxed alphas, keyed by iteration (recording one again replaces it)."""

    def __init__(self, towers: dict[str, dict[str, list[str]]]) -> None:
        self.towers = towers  # role -> {"op_names": [...], "edges": [...]}
        self.snapshots: list[dict[str, Any]] = []

    @classmethod
    def for_model(cls, model: nn.Module) -> AlphaHistory:
        towers = {
            role: {"op_names": list(tower.op_names), "edges": edge_labels(len(tower.alphas))}
            for role, tower in _towers(model).items()
        }
        if not towers:
            raise FadError("alpha history: the model has no search towers")
        return cls(towers)

    def record(
        self, model: nn.Module, iteration: int, *, checkpoint: bool = False
    ) -> dict[str, Any]:
        """Add (or replace) the snapshot of ``iteration`` (weights and derived genotypes)."""
        towers = _towers(model)
        snapshot: dict[str, Any] = {
            "iteration": int(iteration),
            "checkpoint": bool(checkpoint),
            "weights": {role: edge_weights(tower) for role, tower in towers.items()},
        }
        snapshot["genotypes"] = {role: str(tower.genotype()) for role, tower in towers.items()}
        self.snapshots = [s for s in self.snapshots if s["iteration"] != iteration]
        self.snapshots.append(snapshot)
        self.snapshots.sort(key=lambda s: s["iteration"])
        return snapshot

    def state_dict(self) -> dict[str, Any]:
        """Plain data (lists, floats, strings) for checkpoints and JSON."""
        return {"format": FORMAT_VERSION, "towers": self.towers, "snapshots": self.snapshots}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], source: str = "checkpoint") -> AlphaHistory:
        if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
            raise FadError(f"{source}: alpha history of an unknown format")
        history = cls(state["towers"])
        history.snapshots = list(state["snapshots"])
        return history

    def truncate(self, iteration: int) -> None:
        """Drop the snapshots after ``iteration`` (a resume continues from there)."""
        self.snapshots = [s for s in self.snapshots if s["iteration"] <= iteration]

    def stability(self, window: int) -> dict[str, Any]:
        """How settled the search is: the share of the latest genotypes' edges (tower, node, op,
        input) present in every snapshot of the last ``window`` iterations (1.0: unchanged)."""
        traced = [s for s in self.snapshots if "genotypes" in s]
        if not traced:
            return {"window": window, "since": None, "share_unchanged": None, "snapshots": 0}
        last = traced[-1]["iteration"]
        recent = [s for s in traced if s["iteration"] >= last - window]
        final = genotype_edges(traced[-1]["genotypes"])
        kept = set.intersection(final, *(genotype_edges(s["genotypes"]) for s in recent))
        return {
            "window": window,
            "since": recent[0]["iteration"],
            "share_unchanged": len(kept) / len(final),
            "snapshots": len(recent),
        }

    def write_json(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(self.state_dict(), indent=1) + "\n")

    def log_text(self) -> str:
        """The checkpoint snapshots, per edge the ops sorted by weight (heaviest first)."""
        lines = ["# softmax(alpha) per edge at each checkpoint, ops sorted by weight"]
        for snapshot in self.snapshots:
            if not snapshot["checkpoint"]:
                continue
            lines.append(f"\n== iteration {snapshot['iteration']} ==")
            figures = snapshot_convergence(snapshot, self.towers)
            lines.append(summary(figures))
            for role, rows in snapshot["weights"].items():
                spec = self.towers[role]
                lines.append(f"{role} genotype: {snapshot['genotypes'][role]}")
                for edge in figures[role]["kept_edges"]:
                    lines.append(
                        f"  kept: node {edge['node']} <- {edge['input']} {edge['op']} "
                        f"{edge['weight']:.4f} (runner-up {edge['runner_up']}, margin "
                        f"{edge['margin']:+.4f})"
                    )
                lines.append(f"{role} tower, every edge:")
                for label, row in zip(spec["edges"], rows, strict=True):
                    ranked = sorted(zip(row, spec["op_names"], strict=True), reverse=True)
                    ops = ", ".join(f"{name} {p:.4f}" for p, name in ranked)
                    lines.append(f"  {label:<18} {ops}")
        return "\n".join(lines) + "\n"

    def write_log(self, path: Path) -> None:
        atomic_write_text(path, self.log_text())

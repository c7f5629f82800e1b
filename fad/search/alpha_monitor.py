"""What a search tracks after each iteration: the alpha history, the alpha loss, convergence and
genotype stability, logged and written to TensorBoard every `LOG_PERIOD` iterations."""

from __future__ import annotations

import logging
from typing import Any

from torch import Tensor, nn

from fad.search.convergence import snapshot_convergence, summary
from fad.search.history import AlphaHistory
from fad.search.methods import SearchMethod

log = logging.getLogger("fad")
LOG_PERIOD = 20  # progress line, TensorBoard and alpha history every this many iterations


class AlphaMonitor:
    """After each iteration: record the alpha history (every LOG_PERIOD iterations and at
    checkpoints), log the alpha loss, the convergence figures (`fad.search.convergence`: entropy
    against uniform, the weakest kept op), the method's values (e.g. a temperature) and genotype
    stability, write them to TensorBoard.

    Stability: the share of the current genotypes' edges unchanged over the last
    `stability_window(max_iter)` iterations (see `AlphaHistory.stability`).
    """

    def __init__(
        self,
        model: nn.Module,
        history: AlphaHistory,
        *,
        checkpoint_period: int,
        max_iter: int,
        writer: Any = None,
        method: SearchMethod | None = None,
    ) -> None:
        self.method = method
        self.model = model
        self.history = history
        self.checkpoint_period = checkpoint_period
        self.max_iter = max_iter
        self.writer = writer
        self.window: list[float] = []

    def __call__(self, iteration: int, alpha_loss: Tensor | None) -> None:
        done = iteration + 1
        if alpha_loss is not None:
            self.window.append(float(alpha_loss))
        checkpoint = done % self.checkpoint_period == 0 or done == self.max_iter
        if not (checkpoint or done % LOG_PERIOD == 0):
            return
        snapshot = self.history.record(self.model, done, checkpoint=checkpoint)
        figures = snapshot_convergence(snapshot, self.history.towers)
        stable = self.history.stability(stability_window(self.max_iter))
        mean_loss = sum(self.window) / len(self.window) if self.window else None
        self.window = []
        values = self.method.values(iteration) if self.method is not None else {}
        log.info(
            "iter %d/%d  alpha loss %s  %s%s  edges unchanged since iter %d: %.0f%%",
            done,
            self.max_iter,
            "(warm-up)" if mean_loss is None else f"{mean_loss:.4f}",
            summary(figures),
            "".join(f"  {k} {v:.3g}" for k, v in values.items()),
            stable["since"],
            100 * stable["share_unchanged"],
        )
        if self.writer is not None:
            if mean_loss is not None:
                self.writer.add_scalar("alpha/loss", mean_loss, done)
            self.writer.add_scalar("alpha/genotype_stability", stable["share_unchanged"], done)
            for role, f in figures.items():
                self.writer.add_scalar(f"alpha/entropy_{role}", f["mean_entropy"], done)
                self.writer.add_scalar(f"alpha/entropy_uniform_{role}", f["uniform_entropy"], done)
                self.writer.add_scalar(
                    f"alpha/weakest_kept_op_{role}", f["min_top_over_uniform"], done
                )
            for key, value in values.items():
                self.writer.add_scalar(f"alpha/{key}", value, done)


def stability_window(max_iter: int) -> int:
    """The iterations over which genotype stability is measured: the last quarter of the search
    (at least one log period)."""
    return max(LOG_PERIOD, max_iter // 4)

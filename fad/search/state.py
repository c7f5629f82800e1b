"""The state of a search: model (weights and alphas), both optimizers, the scheduler and the
alpha history; what a checkpoint holds besides the iteration and RNG states."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from yacs.config import CfgNode as CN

from fad.engine.checkpoint import load_model_state, load_optimizer_state, rng_state
from fad.search.history import AlphaHistory
from fad.search_space.towers import alphas, named_alphas
from fad.solver import build_optimizer, build_scheduler


def build_weight_optimizer(model: nn.Module, solver: CN) -> torch.optim.Optimizer:
    """The weights' optimizer of training (SOLVER.OPTIMIZER, bias groups), alphas left out.

    With SOLVER.SEARCH.ALPHAS_IN_WEIGHT_STEP (the released FAD code) the alphas are in it too,
    with the weights' lr and decay: they also move on the weight batch's loss.
    """
    if solver.SEARCH.ALPHAS_IN_WEIGHT_STEP:
        return build_optimizer(model.named_parameters(), solver)
    alpha_ids = {id(p) for _, p in named_alphas(model)}
    return build_optimizer(
        ((n, p) for n, p in model.named_parameters() if id(p) not in alpha_ids), solver
    )


def build_alpha_optimizer(model: nn.Module, search: CN) -> torch.optim.Adam:
    """Adam over the alphas: SOLVER.SEARCH.{BASE_LR_ALPHA, BETAS_ALPHA, WEIGHT_DECAY_ALPHA}."""
    return torch.optim.Adam(
        alphas(model),
        lr=search.BASE_LR_ALPHA,
        betas=tuple(search.BETAS_ALPHA),
        weight_decay=search.WEIGHT_DECAY_ALPHA,
    )


@dataclass
class SearchState:
    """Everything a search checkpoint holds, besides the iteration and RNG states."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    alpha_optimizer: torch.optim.Optimizer
    history: AlphaHistory

    @classmethod
    def build(cls, model: nn.Module, cfg: CN) -> SearchState:
        optimizer = build_weight_optimizer(model, cfg.SOLVER)
        return cls(
            model,
            optimizer,
            build_scheduler(optimizer, cfg.SOLVER),
            build_alpha_optimizer(model, cfg.SOLVER.SEARCH),
            AlphaHistory.for_model(model),
        )

    def payload(self, iteration: int, meta: dict[str, Any]) -> dict[str, Any]:
        """The checkpoint dict (tensors and plain data only)."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "alpha_optimizer": self.alpha_optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "iteration": iteration,
            "rng": rng_state(),
            "meta": meta,
            "alpha_history": self.history.state_dict(),
        }

    def load(self, ckpt: dict[str, Any], source: str) -> int:
        """Restore from a checkpoint (RNG states excepted); return its iteration."""
        load_model_state(self.model, ckpt["model"], source)
        load_optimizer_state(self.optimizer, ckpt["optimizer"], source)
        self.alpha_optimizer.load_state_dict(ckpt["alpha_optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        iteration = int(ckpt["iteration"])
        self.history = AlphaHistory.from_state_dict(ckpt["alpha_history"], source)
        self.history.truncate(iteration)
        return iteration

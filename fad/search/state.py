"""The state of a search: training's state plus the alpha optimizer and the alpha history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from yacs.config import CfgNode as CN

from fad.engine.state import TrainState, run_precision
from fad.runtime.checkpoint import CheckpointMeta
from fad.search.history import AlphaHistory
from fad.search_space.towers import alphas, named_alphas
from fad.solver import build_optimizer, build_scheduler


def build_param_optimizer(model: nn.Module, solver: CN) -> torch.optim.Optimizer:
    """The network parameters' optimizer of training (SOLVER.OPTIMIZER, bias groups), alphas
    left out.

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
class SearchState(TrainState):
    """Everything a search checkpoint holds, besides the iteration and RNG states; one loss
    scaler (fp16) serves the alpha and the weight step."""

    alpha_optimizer: torch.optim.Optimizer | None = None
    history: AlphaHistory | None = None
    method: Any = None  # the SearchMethod, set once built over the model (its state: name, ...)

    @classmethod
    def build(cls, model: nn.Module, cfg: CN) -> SearchState:
        optimizer = build_param_optimizer(model, cfg.SOLVER)
        return cls(
            model,
            optimizer,
            build_scheduler(optimizer, cfg.SOLVER),
            run_precision(model, cfg),
            build_alpha_optimizer(model, cfg.SOLVER.SEARCH),
            AlphaHistory.for_model(model),
        )

    def payload(self, iteration: int, meta: CheckpointMeta) -> dict[str, Any]:
        return {
            **super().payload(iteration, meta),
            "alpha_optimizer": self.alpha_optimizer.state_dict(),
            "alpha_history": self.history.state_dict(),
            "search_method": self.method.state_dict(),
        }

    def load(self, ckpt: dict[str, Any], source: str) -> int:
        iteration = super().load(ckpt, source)
        # checkpoints from before search methods were DARTS of the run's order
        self.method.load_state_dict(ckpt.get("search_method", {"name": self.method.name}), source)
        self.alpha_optimizer.load_state_dict(ckpt["alpha_optimizer"])
        self.history = AlphaHistory.from_state_dict(ckpt["alpha_history"], source)
        self.history.truncate(iteration)
        return iteration

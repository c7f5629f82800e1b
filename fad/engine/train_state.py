"""The state of a training run: what its checkpoint (`fad.runtime.checkpoint.RunCheckpoint`)
holds besides the RNG states and the meta."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from yacs.config import CfgNode as CN

from fad.runtime.checkpoint import (
    CheckpointMeta,
    RunCheckpoint,
    load_model_state,
    load_optimizer_state,
)
from fad.runtime.precision import Precision
from fad.solver import build_optimizer, build_scheduler


@dataclass
class TrainState:
    """The model, its optimizer and lr schedule, and the precision (SOLVER.AMP, with the fp16 loss
    scaler); `checkpoint` / `load` are the checkpoint's view."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    precision: Precision = field(default_factory=Precision)

    @classmethod
    def build(cls, model: nn.Module, cfg: CN) -> TrainState:
        optimizer = build_optimizer(model.named_parameters(), cfg.SOLVER)
        scheduler = build_scheduler(optimizer, cfg.SOLVER)
        return cls(model, optimizer, scheduler, run_precision(model, cfg))

    def checkpoint(self, iteration: int, meta: CheckpointMeta) -> RunCheckpoint:
        """The checkpoint after `iteration` completed iterations (RNG states taken now)."""
        return RunCheckpoint(
            model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            iteration=iteration,
            meta=meta,
            scaler=self.precision.state_dict() if self.precision.scaling else None,
        )

    def load(self, ckpt: RunCheckpoint, source: str) -> int:
        """Restore from a checkpoint (RNG states excepted); return its iteration. A fp16 run
        resumed from a checkpoint without a scaler state starts a fresh scaler."""
        load_model_state(self.model, ckpt.model, source)
        load_optimizer_state(self.optimizer, ckpt.optimizer, source)
        self.scheduler.load_state_dict(ckpt.scheduler)
        self.precision.load_state_dict(ckpt.scaler)
        return ckpt.iteration


def run_precision(model: nn.Module, cfg: CN) -> Precision:
    """SOLVER.AMP on the device of `model`'s parameters."""
    return Precision(cfg.SOLVER.AMP, next(model.parameters()).device)

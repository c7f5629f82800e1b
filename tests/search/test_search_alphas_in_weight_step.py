"""SOLVER.SEARCH.ALPHAS_IN_WEIGHT_STEP: the released FAD code's dynamics, where the weights' SGD
also moves the alphas on the weight batch's loss."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fad.config import load_config
from fad.search.search_state import build_param_optimizer
from fad.search_space.towers import CellTowerSpec, TowerSpec, alphas, build_towers


class _Towers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        tower = CellTowerSpec(num_cells=1, num_nodes=1, edge_channels=32)
        self.box, self.cls = build_towers(
            TowerSpec(mode="search", channels=32, box=tower, cls=tower)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        box = self.box(x)
        return box + self.cls(x, box)


@pytest.mark.parametrize("switch", [False, True])
def test_the_weight_step_moves_the_alphas_only_with_the_switch(switch):
    torch.manual_seed(0)
    model = _Towers()
    cfg = load_config(None, ["SOLVER.SEARCH.ALPHAS_IN_WEIGHT_STEP", str(switch)])
    optimizer = build_param_optimizer(model, cfg.SOLVER)
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert all((id(a) in held) == switch for a in alphas(model))
    before = [a.detach().clone() for a in alphas(model)]
    optimizer.zero_grad()
    model(torch.randn(2, 32, 6, 6)).square().mean().backward()
    optimizer.step()
    moved = [not torch.equal(a, b) for a, b in zip(alphas(model), before)]
    assert all(moved) if switch else not any(moved)
    if switch:  # with the weights' lr and weight decay, as the released code's make_optimizer
        group = next(
            g for g in optimizer.param_groups if any(p is alphas(model)[0] for p in g["params"])
        )
        assert (
            group["lr"] == cfg.SOLVER.BASE_LR and group["weight_decay"] == cfg.SOLVER.WEIGHT_DECAY
        )

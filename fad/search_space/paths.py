"""Compute paths: how a model's towers run over the FPN levels, chosen once for the whole model.

- ``plain``: the towers' own modules, one FPN level at a time (the reference);
- ``fused``: every level in one canvas and a search cell's edges batched
  (`fad.search_space.fused`); towers it does not cover (search towers of naive mixed ops) keep
  the plain loop.

A path changes no parameter and no state-dict name: checkpoints are the same under both.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from fad.search_space.fused.path import FusedPath
from fad.search_space.ops import unknown_name_error
from fad.search_space.towers import ComputePath, Tower


def _plain(tower: Tower) -> ComputePath | None:
    return None


def _fused(tower: Tower) -> ComputePath | None:
    return FusedPath(tower) if FusedPath.applies_to(tower) else None


COMPUTE_PATHS: dict[str, Callable[[Tower], ComputePath | None]] = {
    "plain": _plain,
    "fused": _fused,
}


def check_compute_path(name: str) -> None:
    """A FadError listing the paths when ``name`` is not one."""
    if name not in COMPUTE_PATHS:
        raise unknown_name_error("compute path", name, COMPUTE_PATHS)


def use_compute_path(model: nn.Module, name: str) -> None:
    """Set compute path ``name`` on every tower inside ``model`` (in place)."""
    check_compute_path(name)
    for module in model.modules():
        if isinstance(module, Tower):
            module.compute_path = COMPUTE_PATHS[name](module)

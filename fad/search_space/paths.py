"""Compute paths: how a model's towers run over the FPN levels, chosen once for the whole model.

- ``plain``: the towers' own modules, one FPN level at a time (the reference);
- ``fused``: every level in one canvas and a search cell's edges batched
  (`fad.search_space.fused`). It covers standard towers (FCOS's GroupNorm chain, RetinaNet's
  conv + ReLU chain), genotype towers and RepShare search towers under every relaxation the
  search methods set: DARTS's softmax op weights, GDAS's sampled op per edge (only the active
  ops computed, as the modules), PC-DARTS's partial channels and edge weights, without 'none'
  (MODEL.FAD.SEARCH_NONE False) and with either decouple init. Search towers of naive mixed ops
  (MODEL.FAD.REPSHARE False) keep the plain loop.

The CPU kernels that came before (1x1 as matmuls, channels-last depthwise, recomputation) are
gone: the fused path was faster than them on the demo's heads (docs/performance.md).

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

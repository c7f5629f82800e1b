"""Recomputation of cheap activations: autograd saves how to remake them instead of the tensors.

A tensor marked with ``recomputable(out, fn, *inputs)`` (``out == fn(*inputs)``, deterministic)
is saved for backward, inside ``cheap_recompute()``, as that recipe: the backward remakes it from
``inputs`` when it needs it, so the forward does not keep it alive. An input that is itself
recomputable is held by its recipe, not as a tensor. Views of a marked tensor (a permuted or
flattened one, as a matrix product saves) are remade as the same view of the remade tensor.
Used for GroupNorm + ReLU outputs and depthwise conv outputs, which cost one pass to remake
and would otherwise be held by the next conv and by the weighted sum.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import Tensor

MIN_NUMEL = 1 << 18  # 1 MiB of fp32
_RECIPE = "_fad_recipe"  # on the marked tensor: its recipe, for the recipes of later tensors
_STORAGE_RECIPE = "_fad_storage_recipe"  # on its base: remakes the storage that views read


class Recipe:
    """``fn(*sources)``, a source being a tensor, a recipe (remade first) or a plain value.

    The remade tensor is kept while saved copies of it remain to be unpacked, so that all the
    consumers of a tensor share one remake. It is remade outside autocast, as it was made (the
    kernels mark only float32 tensors made outside autocast), even when the backward runs in an
    autocast region.
    """

    def __init__(self, fn: Callable[..., Tensor], sources: tuple[Any, ...], device: str) -> None:
        self.fn = fn
        self.sources = sources
        self.device = device
        self.pending = 0  # saved copies not yet unpacked
        self.made: Tensor | None = None

    def __call__(self) -> Tensor:
        made = self.made
        if made is None:
            with torch.no_grad(), _no_autocast(self.device):
                made = self.fn(*(s() if isinstance(s, Recipe) else s for s in self.sources))
            if self.pending > 0:
                self.made = made
        return made

    def unpack(self) -> Tensor:
        made = self()
        self.pending -= 1
        if self.pending <= 0:
            self.made = None
        return made


def _no_autocast(device: str) -> AbstractContextManager[Any]:
    if device in ("cpu", "cuda"):
        return torch.autocast(device, enabled=False)
    return contextlib.nullcontext()


def source(value: Any) -> Any:
    """What a recipe keeps of ``value``: its own recipe when it has one, else ``value``."""
    if isinstance(value, Tensor):
        return value.__dict__.get(_RECIPE, value)
    return value


def _base(tensor: Tensor) -> Tensor:
    return tensor if tensor._base is None else tensor._base


def recomputable(out: Tensor, fn: Callable[..., Tensor], *inputs: Any) -> bool:
    """Mark ``out`` (== ``fn(*inputs)``, made by this call) as remade by that call, if it holds
    at least ``MIN_NUMEL`` values (below, remaking costs more time than keeping costs memory).
    Returns whether it was marked."""
    if out.numel() < MIN_NUMEL:
        return False
    recipe = Recipe(fn, tuple(source(i) for i in inputs), out.device.type)
    setattr(out, _RECIPE, recipe)
    setattr(_base(out), _STORAGE_RECIPE, recipe)
    return True


def _pack(tensor: Tensor) -> Any:
    recipe = _base(tensor).__dict__.get(_STORAGE_RECIPE)
    if recipe is None:
        return tensor
    recipe.pending += 1
    return recipe, tensor.size(), tensor.stride(), tensor.storage_offset()


def _unpack(packed: Any) -> Tensor:
    if isinstance(packed, Tensor):
        return packed
    recipe, size, stride, offset = packed
    return recipe.unpack().as_strided(size, stride, offset)  # the saved view, remade


def cheap_recompute() -> AbstractContextManager[None]:
    """Within it, autograd saves marked tensors as their recipes (see the module docstring)."""
    return torch.autograd.graph.saved_tensors_hooks(_pack, _unpack)

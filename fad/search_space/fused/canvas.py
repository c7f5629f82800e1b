"""All FPN levels of a batch in one tensor: the levels side by side on a zero canvas.

A tower's weights are shared by every level, so each of its ops can run once on a canvas that
holds all levels, separated by zero borders at least ``gap`` pixels wide (the largest dilation of
the tower's convolutions): a 3x3 conv of dilation d <= gap then reads, around a level's pixel,
only that level's pixels and zeros, exactly as with the level's own zero padding (the canvas's
outer border is the conv's own padding). After a conv the borders hold garbage; they are
re-zeroed (``mask``) before the next spatial conv reads them, and GroupNorm takes its statistics
per level (``indicator``) and writes zeros there.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

Size = tuple[int, int]


@dataclass(frozen=True)
class Layout:
    """Where each level sits: ``origins[l]`` = (row, column) of level l's top-left pixel."""

    sizes: tuple[Size, ...]
    origins: tuple[Size, ...]
    height: int
    width: int

    @property
    def pixels(self) -> int:
        return self.height * self.width


def _conflicts(y: int, x: int, size: Size, placed: list[tuple[Size, Size]], gap: int) -> bool:
    """Whether a ``size`` rectangle at (y, x) comes closer than ``gap`` to a placed one."""
    h, w = size
    for (py, px), (ph, pw) in placed:
        if y < py + ph + gap and py < y + h + gap and x < px + pw + gap and px < x + w + gap:
            return True
    return False


@functools.lru_cache(maxsize=256)
def plan_layout(sizes: tuple[Size, ...], gap: int) -> Layout:
    """Place the levels (largest first, as an FPN lists them) on a canvas as tall as the tallest:
    each at the candidate corner (next to a placed level) that widens the canvas least."""
    height = max(h for h, _ in sizes)
    placed: list[tuple[Size, Size]] = []
    origins: dict[int, Size] = {}
    width = 0
    for index in sorted(range(len(sizes)), key=lambda i: -sizes[i][0] * sizes[i][1]):
        h, w = sizes[index]
        rows = {0, *(py + ph + gap for (py, _), (ph, _) in placed)}
        cols = {0, *(px + pw + gap for (_, px), (_, pw) in placed)}
        best = min(  # a list, not a generator: torch.compile traces through this function
            [
                (max(width, x + w), x, y)
                for y in rows
                for x in cols
                if y + h <= height and not _conflicts(y, x, (h, w), placed, gap)
            ]
        )
        width, x, y = best
        placed.append(((y, x), (h, w)))
        origins[index] = (y, x)
    return Layout(tuple(sizes), tuple(origins[i] for i in range(len(sizes))), height, width)


class Canvas:
    """One layout on one device: packs and unpacks levels, and holds the per-level masks.

    mask: [1, 1, H, W], 1 on the levels' pixels, 0 on the borders.
    indicator: [H * W, L], 1 where pixel p belongs to level l (its transpose: ``spread``).
    counts: [L] pixels per level.
    """

    def __init__(self, layout: Layout, device: torch.device, dtype: torch.dtype) -> None:
        self.layout = layout
        # torch.compile traces a cached function's body (and warns): it is given the body
        masks = _masks.__wrapped__ if torch.compiler.is_compiling() else _masks
        self.indicator, self.spread, self.counts, self.mask = masks(layout, device, dtype)
        self.windows = tuple(
            (slice(y, y + h), slice(x, x + w))
            for (y, x), (h, w) in zip(layout.origins, layout.sizes, strict=True)
        )

    @classmethod
    def for_levels(cls, levels: Sequence[Tensor], gap: int) -> Canvas:
        """The canvas of these levels for convs that reach at most ``gap`` pixels away; its
        masks in float32 (float64 for float64 levels)."""
        sizes = tuple((int(t.shape[-2]), int(t.shape[-1])) for t in levels)
        dtype = torch.promote_types(levels[0].dtype, torch.float32)
        plan = plan_layout.__wrapped__ if torch.compiler.is_compiling() else plan_layout
        return cls(plan(sizes, gap), levels[0].device, dtype)

    @property
    def dtype(self) -> torch.dtype:
        return self.mask.dtype

    def pack(self, levels: Sequence[Tensor]) -> Tensor:
        """[N, C, H_l, W_l] per level -> the canvas [N, C, H, W] (zero borders)."""
        n, c = levels[0].shape[:2]
        out = levels[0].new_zeros(n, c, self.layout.height, self.layout.width)
        for level, (y, x), (h, w) in zip(levels, self.layout.origins, self.layout.sizes):
            out[:, :, y : y + h, x : x + w] = level
        return out

    def unpack(self, canvas: Tensor) -> list[Tensor]:
        """The canvas -> one [N, C, H_l, W_l] view per level."""
        return [canvas[:, :, rows, cols] for rows, cols in self.windows]

    def bias(self, bias: Tensor) -> Tensor:
        """A per-channel ``bias`` [C] on the levels only: [C, H * W], zeros on the borders."""
        return bias[:, None] * self.mask.view(1, -1)


@functools.lru_cache(maxsize=64)
def _masks(
    layout: Layout, device: torch.device, dtype: torch.dtype
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(indicator [P, L], its transpose [L, P] contiguous, counts [L], mask [1, 1, H, W])."""
    grid = torch.zeros(len(layout.sizes), layout.height, layout.width, dtype=dtype)
    for level, ((y, x), (h, w)) in enumerate(zip(layout.origins, layout.sizes, strict=True)):
        grid[level, y : y + h, x : x + w] = 1
    spread = grid.view(len(layout.sizes), -1).to(device)
    counts = torch.tensor([h * w for h, w in layout.sizes], dtype=dtype, device=device)
    mask = spread.sum(0).view(1, 1, layout.height, layout.width)
    return spread.t().contiguous(), spread.contiguous(), counts, mask

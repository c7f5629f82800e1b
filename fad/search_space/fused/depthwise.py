"""Depthwise convs on a CPU canvas, channels-last: a dilated one as an undilated conv on the
d x d phase grids of its input.

Torch's CPU depthwise conv is several times faster channels-last than NCHW, and its dilated
backward much slower than its undilated one (docs/performance.md). Pixel (i, j) of a dilated
conv only meets pixels of its phase (i mod d, j mod d), so the conv is the undilated one on each
phase grid [H / d, W / d] (the canvas's sides are multiples of d; its zero borders, at least d
wide, become borders at least 1 wide on every grid). The grids are made in channels-last in the
one copy that reorders the input, and the result comes back to NCHW in one copy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

CHANNELS_LAST = torch.channels_last


def _to_grids(x: Tensor, d: int) -> Tensor:
    """[N, C, H, W] -> its d * d phase grids, channels-last [N * d * d, C, H / d, W / d]."""
    n, c, h, w = x.shape
    grids = x.reshape(n, c, h // d, d, w // d, d).permute(0, 3, 5, 2, 4, 1)
    return grids.reshape(n * d * d, h // d, w // d, c).permute(0, 3, 1, 2)


def _from_grids(grids: Tensor, d: int) -> Tensor:
    """The inverse of ``_to_grids``: -> NCHW [N, C, H, W]."""
    nd, c, hp, wp = grids.shape
    phases = grids.permute(0, 2, 3, 1).reshape(nd // (d * d), d, d, hp, wp, c)
    return phases.permute(0, 5, 3, 1, 4, 2).reshape(nd // (d * d), c, hp * d, wp * d)


def depthwise(x: Tensor, weight: Tensor, bias: Tensor | None, dilation: int) -> Tensor:
    """A depthwise 3x3 conv of ``dilation`` (padding = dilation) on a clean canvas: [N, C, H, W]
    -> NCHW [N, C, H, W]; on a CPU channels-last (phase grids when dilated), else as is."""
    channels = x.shape[1]
    if x.device.type != "cpu":
        return F.conv2d(x, weight, bias, 1, dilation, dilation, channels)
    if dilation == 1:
        out = F.conv2d(x.contiguous(memory_format=CHANNELS_LAST), weight, bias, 1, 1, 1, channels)
        return out.contiguous()
    out = F.conv2d(_to_grids(x, dilation), weight, bias, 1, 1, 1, channels)
    return _from_grids(out, dilation)

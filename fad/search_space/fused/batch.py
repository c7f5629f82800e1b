"""Several edges' copies of one module run as one: a canvas tensor holding E edges' channels.

An edge batch is [N, E * C, H, W], edge e in channels [e * C, (e + 1) * C). Conv units of the
same kind, one per edge, run as one unit whose parameters are theirs concatenated: a dense conv
becomes a conv of E groups, a depthwise conv one of E * C groups, a 1x1 conv a batched matrix
product, and GroupNorm takes E times the groups (groups never straddle two edges).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from fad.search_space.fused.canvas import Canvas
from fad.search_space.fused.chain import Flow, grouped_pointwise, norm_flow, spatial_conv
from fad.search_space.ops import ConvUnit, body_convs


class Batch(NamedTuple):
    """An edge batch [N, E * C, H, W] and the ids of its edges, in channel order."""

    x: Tensor
    edges: tuple[int, ...]


def take(batch: Batch, edges: Sequence[int]) -> Tensor:
    """The channels of ``edges`` (in that order): a view when they are consecutive in ``batch``,
    else a copy."""
    if tuple(edges) == batch.edges:
        return batch.x
    n, total, h, w = batch.x.shape
    width = total // len(batch.edges)
    index = [batch.edges.index(e) for e in edges]
    if index == list(range(index[0], index[0] + len(index))):
        return batch.x[:, index[0] * width : (index[-1] + 1) * width]
    picked = batch.x.view(n, -1, width, h, w)[:, index]
    return picked.reshape(n, len(index) * width, h, w)


def _cat(tensors: list[Tensor | None]) -> Tensor | None:
    if tensors[0] is None:
        return None
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors)  # type: ignore[arg-type]


def _batched_conv(convs: list[nn.Conv2d], flow: Flow, canvas: Canvas) -> Flow:
    """One conv per edge, all of the same shape, on an edge batch."""
    first, count = convs[0], len(convs)
    bias = _cat([c.bias for c in convs])
    if first.kernel_size == (1, 1) and first.groups == 1:
        weight = torch.stack([c.weight.flatten(1) for c in convs])  # [E, C', C]
        return Flow(grouped_pointwise(flow.x, weight, bias, canvas), flow.clean)
    weight = _cat([c.weight for c in convs])
    return spatial_conv(flow, weight, bias, first.dilation[0], count * first.groups, canvas)


def batched_unit(units: list[ConvUnit], flow: Flow, canvas: Canvas) -> Flow:
    """One `ConvUnit` per edge (same kind, same width) on an edge batch: body -> GN -> ReLU."""
    for position, first in enumerate(body_convs(units[0])):
        convs = [body_convs(u)[position] for u in units] if len(units) > 1 else [first]
        flow = _batched_conv(convs, flow, canvas)
    norms = [u.norm for u in units]
    groups = len(units) * norms[0].num_groups
    weight, bias = _cat([n.weight for n in norms]), _cat([n.bias for n in norms])
    return norm_flow(flow, weight, bias, groups, norms[0].eps, canvas, relu=True)

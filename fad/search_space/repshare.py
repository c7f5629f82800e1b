"""RepShare: one conv stack per base, computed once, whose intermediate results feed many ops.

For the released space a base's stack is conv1 -> conv2 -> conv3; its results x1, x2, x3 are the
outputs of ``X``, ``X_x2``, ``X_x3``, and the dilated suffix applied to the raw x1 and x2 gives
``X+dil_conv_3x3`` and ``X_x2+dil_conv_3x3``. A result that is both an op output and the next
conv's input (x1, x2) passes through its own 1x1 conv (no bias) before it is mixed, so the two
roles are decoupled. One edge thus costs 10 conv units and four 1x1 convs for its 10 ops, where
the naive mixed op (every op its own module, as plain DARTS) costs 22 conv units.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx

from fad.errors import FadError
from fad.search_space import kernels
from fad.search_space.ops import NONE, OpSpec, build_op, check_op_names, conv_unit, op_spec


class RepShareStack(nn.Module):
    """The shared stack of one base for the ops ``specs`` (all of that base)."""

    def __init__(self, specs: Sequence[OpSpec], channels: int) -> None:
        super().__init__()
        bases = {spec.base for spec in specs}
        if len(bases) != 1:
            raise FadError(f"a RepShare stack needs ops of one base, got {sorted(bases)}")
        depth = max(spec.depth for spec in specs)
        self.specs = tuple(specs)
        self.convs = nn.ModuleList(conv_unit(specs[0].base, channels) for _ in range(depth))
        self.suffixes = nn.ModuleList(
            conv_unit(spec.suffix, channels) if spec.suffix else nn.Identity() for spec in specs
        )
        self.decouple = nn.ModuleList(
            nn.Conv2d(channels, channels, 1, bias=False)
            if spec.suffix is None and spec.depth < depth
            else nn.Identity()
            for spec in specs
        )

    def shared_results(self, x: Tensor) -> list[Tensor]:
        """Each op's result before decoupling: [N, C, H, W] -> one [N, C, H, W] per spec, in
        ``x``'s layout (``kernels``)."""
        raw = []
        for conv in self.convs:
            x = kernels.conv_unit(conv, x)
            raw.append(x)
        return [
            kernels.conv_unit(suffix, raw[s.depth - 1]) if s.suffix else raw[s.depth - 1]
            for suffix, s in zip(self.suffixes, self.specs, strict=True)
        ]

    def forward(self, x: Tensor) -> list[Tensor]:
        """[N, C, H, W] -> one decoupled [N, C, H, W] result per spec, in ``x``'s layout."""
        results = self.shared_results(x)
        form = kernels.layout(x)
        return [kernels.pointwise(r, d, form) for d, r in zip(self.decouple, results, strict=True)]


class _Mix(torch.autograd.Function):
    """z = sum_k w[col_k] * D_k(r_k), D_k a 1x1 conv (no bias) or the identity.

    The products are matrix products with weight w * D accumulated into one buffer, then the
    identity terms are added in place: no per-op output, no separate weighting pass.
    """

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        weights: Tensor,
        columns: Sequence[int],
        decoupled: Sequence[bool],
        *tensors: Tensor,
    ) -> Tensor:
        k = len(columns)
        results, mats = tensors[:k], iter(tensors[k:])
        products = [
            (c, r, next(mats).flatten(1)) for c, r, d in zip(columns, results, decoupled) if d
        ]
        identities = [(c, r) for c, r, d in zip(columns, results, decoupled) if not d]
        total = None
        for col, result, mat in products:
            total = kernels.channel_mix(mat * weights[col], result, total)
        for col, result in identities:
            total = result * weights[col] if total is None else total.addcmul_(result, weights[col])
        ctx.save_for_backward(weights, *results, *tensors[k:])
        ctx.columns, ctx.decoupled = list(columns), list(decoupled)
        return total

    @staticmethod
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, ...]:
        k = len(ctx.columns)
        weights, *results = ctx.saved_tensors[: k + 1]
        mats = iter(ctx.saved_tensors[k + 1 :])
        grad = grad.contiguous(memory_format=kernels.layout(results[0]))
        grad_weights = torch.zeros_like(weights)
        grad_results: list[Tensor | None] = []
        grad_mats: list[Tensor] = []
        for i, (col, result, dec) in enumerate(zip(ctx.columns, results, ctx.decoupled)):
            w, needed = weights[col], ctx.needs_input_grad[3 + i]
            if dec:
                mat = next(mats)
                outer = kernels.channel_outer(grad, result)  # d loss / d (w * D): [C', C]
                grad_weights[col] += (outer * mat.flatten(1)).sum()
                grad_mats.append((outer * w).view_as(mat))
                grad_results.append(
                    kernels.channel_mix((mat.flatten(1) * w).t(), grad) if needed else None
                )
            else:
                grad_weights[col] += torch.dot(kernels.flat(grad), kernels.flat(result))
                grad_results.append(grad * w if needed else None)
        return grad_weights, None, None, *grad_results, *grad_mats


def mix(
    results: Sequence[Tensor],
    weights: Tensor,
    columns: Sequence[int],
    decouple: Sequence[nn.Module],
) -> Tensor:
    """sum_k weights[columns[k]] * decouple[k](results[k]); a decouple is a 1x1 conv or identity.

    results: [N, C, H, W] each, in one layout; weights: [n_ops]. Returns [N, C, H, W] in it.
    """
    decoupled = [isinstance(d, nn.Conv2d) for d in decouple]
    mats = [d.weight for d in decouple if isinstance(d, nn.Conv2d)]
    return _Mix.apply(weights, list(columns), decoupled, *results, *mats)


def _weighted_sum(outputs: Sequence[Tensor], weights: Tensor, columns: Sequence[int]) -> Tensor:
    """sum_k weights[columns[k]] * outputs[k]; ``none`` has no column here and adds 0."""
    total = weights[columns[0]] * outputs[0]
    for column, out in zip(columns[1:], outputs[1:], strict=True):
        total = total + weights[column] * out
    return total


class RepShareMixedOp(nn.Module):
    """A mixed edge with RepShare: [N, C, H, W], weights [n_ops] -> [N, C, H, W]."""

    def __init__(self, op_names: Sequence[str], channels: int) -> None:
        super().__init__()
        check_op_names(op_names)
        self.op_names = tuple(op_names)
        self.channels = channels
        by_base: dict[str, list[tuple[int, OpSpec]]] = {}
        for column, name in enumerate(op_names):
            if name != NONE:
                spec = op_spec(name)
                by_base.setdefault(spec.base, []).append((column, spec))
        self.stacks = nn.ModuleList(
            RepShareStack([spec for _, spec in group], channels) for group in by_base.values()
        )
        self.columns = [column for group in by_base.values() for column, _ in group]

    def forward(self, x: Tensor, weights: Tensor) -> Tensor:
        """[N, C, H, W], weights [n_ops] -> [N, C, H, W] in ``x``'s layout."""
        results = [r for stack in self.stacks for r in stack.shared_results(x)]
        decouple = [dec for stack in self.stacks for dec in stack.decouple]
        return mix(results, weights, self.columns, decouple)


class NaiveMixedOp(nn.Module):
    """A mixed edge as plain DARTS builds it, every op its own module (the baseline)."""

    def __init__(self, op_names: Sequence[str], channels: int) -> None:
        super().__init__()
        check_op_names(op_names)
        self.op_names = tuple(op_names)
        self.columns = [c for c, name in enumerate(op_names) if name != NONE]
        self.ops = nn.ModuleList(build_op(op_names[c], channels) for c in self.columns)

    def forward(self, x: Tensor, weights: Tensor) -> Tensor:
        return _weighted_sum([op(x) for op in self.ops], weights, self.columns)


def build_mixed_op(op_names: Sequence[str], channels: int, repshare: bool = True) -> nn.Module:
    """A mixed edge over ``op_names`` (alpha-column order), RepShare or naive."""
    if all(name == NONE for name in op_names):
        raise FadError(f"a mixed op needs at least one op besides 'none', got {list(op_names)}")
    return (RepShareMixedOp if repshare else NaiveMixedOp)(op_names, channels)

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

from fad.errors import FadError
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

    def shared_results(self, x: Tensor, chosen: Sequence[int] | None = None) -> list[Tensor]:
        """The results before decoupling of the specs at indices ``chosen`` (default: all), in
        that order: [N, C, H, W] -> one per chosen spec; the stack runs only as deep as the
        deepest of them."""
        chosen = range(len(self.specs)) if chosen is None else chosen
        raw = []
        for conv in self.convs[: max(self.specs[i].depth for i in chosen)]:
            x = conv(x)
            raw.append(x)
        return [self.suffixes[i](raw[self.specs[i].depth - 1]) for i in chosen]

    def forward(self, x: Tensor, chosen: Sequence[int] | None = None) -> list[Tensor]:
        """[N, C, H, W] -> the decoupled [N, C, H, W] result of each spec at indices ``chosen``
        (default: all), in that order."""
        chosen = range(len(self.specs)) if chosen is None else chosen
        results = self.shared_results(x, chosen)
        return [self.decouple[i](r) for i, r in zip(chosen, results, strict=True)]


def decouple_as_identity(module: nn.Module) -> None:
    """Start every RepShare decouple 1x1 conv inside ``module`` as the identity.

    With PyTorch's default init a decoupled result leaves its 1x1 conv at about 1/sqrt(3) of the
    scale of the results that have none (the suffixed ops and each stack's deepest), so the
    alpha gradient first ranks the ops by that scale, not by what they compute; as the identity,
    every op's result starts as the op's own output, as in the cell the genotype will build.
    """
    for stack in module.modules():
        if isinstance(stack, RepShareStack):
            for conv in stack.decouple:
                if isinstance(conv, nn.Conv2d):
                    channels = conv.weight.shape[0]
                    with torch.no_grad():
                        conv.weight.copy_(torch.eye(channels).view(channels, channels, 1, 1))


def fix_op_scales(module: nn.Module) -> None:
    """Fix the output scale of every mixed op's ops inside ``module`` (DARTS's affine-free
    search ops): each GroupNorm's affine frozen at (1, 0), each RepShare decouple 1x1 frozen as
    the identity.

    With a learned scale after an op's last normalisation the network can undo a change of the
    op's softmax weight (the product weight x scale is what the loss sees); with the scales fixed
    the op weight alone sets each op's share of the edge. (On the embedded default this was not
    what held the alphas near uniform: docs/search.md.)
    """
    decouple_as_identity(module)
    for mixed in module.modules():
        if not isinstance(mixed, (RepShareMixedOp, NaiveMixedOp)):
            continue
        for sub in mixed.modules():
            if isinstance(sub, nn.GroupNorm) and sub.affine:
                with torch.no_grad():
                    sub.weight.fill_(1.0)
                    sub.bias.zero_()
                sub.requires_grad_(False)
        for stack in getattr(mixed, "stacks", ()):
            stack.decouple.requires_grad_(False)


def _weighted_sum(outputs: Sequence[Tensor], op_weights: Tensor, columns: Sequence[int]) -> Tensor:
    """sum_k op_weights[columns[k]] * outputs[k]; ``none`` has no column here and adds 0."""
    total = op_weights[columns[0]] * outputs[0]
    for column, out in zip(columns[1:], outputs[1:], strict=True):
        total = total + op_weights[column] * out
    return total


class RepShareMixedOp(nn.Module):
    """A mixed edge with RepShare: [N, C, H, W], op_weights [n_ops] -> [N, C, H, W]."""

    def __init__(self, op_names: Sequence[str], channels: int) -> None:
        super().__init__()
        check_op_names(op_names)
        self.op_names = tuple(op_names)
        by_base: dict[str, list[tuple[int, OpSpec]]] = {}
        for column, name in enumerate(op_names):
            if name != NONE:
                spec = op_spec(name)
                by_base.setdefault(spec.base, []).append((column, spec))
        self.stacks = nn.ModuleList(
            RepShareStack([spec for _, spec in group], channels) for group in by_base.values()
        )
        self.stack_columns = [[column for column, _ in group] for group in by_base.values()]
        self.columns = [column for columns in self.stack_columns for column in columns]

    def forward(
        self, x: Tensor, op_weights: Tensor, active: Sequence[int] | None = None
    ) -> Tensor | None:
        """[N, C, H, W], op_weights [n_ops] -> [N, C, H, W]; with ``active`` only those op
        columns are computed (None when none of them is a stacked op)."""
        results, columns = [], []
        for stack, stack_columns in zip(self.stacks, self.stack_columns, strict=True):
            chosen = [i for i, c in enumerate(stack_columns) if active is None or c in active]
            if not chosen:
                continue
            results += stack(x, chosen)
            columns += [stack_columns[i] for i in chosen]
        return _weighted_sum(results, op_weights, columns) if results else None


class NaiveMixedOp(nn.Module):
    """A mixed edge as plain DARTS builds it, every op its own module (the baseline)."""

    def __init__(self, op_names: Sequence[str], channels: int) -> None:
        super().__init__()
        check_op_names(op_names)
        self.op_names = tuple(op_names)
        self.columns = [c for c, name in enumerate(op_names) if name != NONE]
        self.ops = nn.ModuleList(build_op(op_names[c], channels) for c in self.columns)

    def forward(
        self, x: Tensor, op_weights: Tensor, active: Sequence[int] | None = None
    ) -> Tensor | None:
        """As `RepShareMixedOp.forward`, every op its own module."""
        chosen = [k for k, c in enumerate(self.columns) if active is None or c in active]
        if not chosen:
            return None
        outputs = [self.ops[k](x) for k in chosen]
        return _weighted_sum(outputs, op_weights, [self.columns[k] for k in chosen])


def build_mixed_op(op_names: Sequence[str], channels: int, repshare: bool = True) -> nn.Module:
    """A mixed edge over ``op_names`` (alpha-column order), RepShare or naive."""
    if all(name == NONE for name in op_names):
        raise FadError(f"a mixed op needs at least one op besides 'none', got {list(op_names)}")
    return (RepShareMixedOp if repshare else NaiveMixedOp)(op_names, channels)

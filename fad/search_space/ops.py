"""The FAD op space: conv units, the op table (name -> factory) and the named search spaces.

Every op maps [N, C, H, W] -> [N, C, H, W] (stride 1, GroupNorm with 32 groups). An op name reads
as ``<base>_conv_3x3[_x<depth>][+dil_conv_3x3[_r3]]``: ``depth`` conv units of the base kind
(``std``: a 3x3 conv; ``sinSep``: a depthwise 3x3 then a pointwise 1x1), optionally followed by a
dilated depthwise-separable suffix (dilation 2, or 3 for ``_r3``). ``none`` is the zero op.
"""

from __future__ import annotations

import difflib
import functools
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from fad.errors import FadError

GN_GROUPS = 32
NONE = "none"
BASES = ("std", "sinSep")
SUFFIX_DILATION = {"dil": 2, "dil_r3": 3}
SUFFIX_NAMES = {"dil": "dil_conv_3x3", "dil_r3": "dil_conv_3x3_r3"}
MAX_DEPTH = 3
MAX_SUFFIXED_DEPTH = 2

OpFactory = Callable[[int], nn.Module]


def _std_body(channels: int) -> nn.Module:
    return nn.Conv2d(channels, channels, 3, padding=1)


def _sin_sep_body(channels: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
        nn.Conv2d(channels, channels, 1),
    )


def _dilated_body(channels: int, dilation: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, groups=channels),
        nn.Conv2d(channels, channels, 1),
    )


_BODIES: dict[str, OpFactory] = {
    "std": _std_body,
    "sinSep": _sin_sep_body,
    **{k: functools.partial(_dilated_body, dilation=d) for k, d in SUFFIX_DILATION.items()},
}


class GroupNorm(nn.GroupNorm):
    """GroupNorm that also takes a group of a single value, normalising it to 0 (output = bias).

    With C == 32 channels (one per group) a 1x1 P7 of one image holds one value per group;
    torch refuses it ("Expected more than 1 value per channel") though the result is defined.
    """

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] == self.num_groups and x.shape[2:].numel() == 1:
            out = x.mul(0.0)  # (x - mean) / std of a single value
            return out + self.bias.view(1, -1, 1, 1) if self.affine else out
        return super().forward(x)


def norm_groups(channels: int) -> int:
    """The GroupNorm groups of a unit on ``channels``: 32, or one per channel below 32 (the
    narrow ops of a partial-channel search edge)."""
    return min(GN_GROUPS, channels)


class ConvUnit(nn.Sequential):
    """One conv unit: ``body`` (a conv, or depthwise + pointwise) -> GroupNorm(32) -> ReLU."""

    def __init__(self, body: nn.Module, channels: int) -> None:
        norm = GroupNorm(norm_groups(channels), channels)
        super().__init__(OrderedDict(body=body, norm=norm, relu=nn.ReLU()))


def body_convs(unit: ConvUnit) -> tuple[nn.Conv2d, ...]:
    """The convs of a unit's body in order: one conv, or the depthwise then the pointwise."""
    body = unit.body
    return tuple(body.children()) if isinstance(body, nn.Sequential) else (body,)


def conv_unit(kind: str, channels: int) -> ConvUnit:
    """A C -> C conv unit of ``kind`` in ``std``, ``sinSep``, ``dil``, ``dil_r3``."""
    return ConvUnit(_BODIES[kind](channels), channels)


@dataclass(frozen=True)
class OpSpec:
    """The structure of a stacked op: ``depth`` units of ``base``, then an optional suffix."""

    base: str
    depth: int
    suffix: str | None = None

    @property
    def name(self) -> str:
        name = f"{self.base}_conv_3x3" + (f"_x{self.depth}" if self.depth > 1 else "")
        return name + (f"+{SUFFIX_NAMES[self.suffix]}" if self.suffix else "")


class StackedOp(nn.Sequential):
    """A stacked op built on its own (fixed cells, naive mixed op): [N, C, H, W] -> same."""

    def __init__(self, spec: OpSpec, channels: int) -> None:
        kinds = [spec.base] * spec.depth + ([spec.suffix] if spec.suffix else [])
        super().__init__(*(conv_unit(kind, channels) for kind in kinds))
        self.spec = spec


class Zero(nn.Module):
    """The ``none`` op: a zero tensor of the input's shape (takes ``channels`` like every op)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x: Tensor) -> Tensor:
        return x.mul(0.0)


def _all_specs() -> Iterable[OpSpec]:
    for base in BASES:
        for depth in range(1, MAX_DEPTH + 1):
            yield OpSpec(base, depth)
        for depth in range(1, MAX_SUFFIXED_DEPTH + 1):
            for suffix in SUFFIX_DILATION:
                yield OpSpec(base, depth, suffix)


OP_SPECS: dict[str, OpSpec] = {spec.name: spec for spec in _all_specs()}
OPS: dict[str, OpFactory] = {
    **{name: functools.partial(StackedOp, spec) for name, spec in OP_SPECS.items()},
    NONE: Zero,
}


def _space(*variants: tuple[int, str | None]) -> tuple[str, ...]:
    """The ops of a space: each (depth, suffix) variant for each base, then ``none``."""
    return tuple(OpSpec(b, d, s).name for b in BASES for d, s in variants) + (NONE,)


SPACES: dict[str, tuple[str, ...]] = {
    # Column order of the released code (it defines the alpha columns).
    "released": _space((1, None), (1, "dil"), (2, None), (2, "dil"), (3, None)),
    # The paper's 12-op space: also the dilation-3 suffix after one unit.
    "with_r3": _space((1, None), (1, "dil"), (1, "dil_r3"), (2, None), (2, "dil"), (3, None)),
}


def closest_first(name: str, valid: Iterable[str]) -> list[str]:
    """``valid`` sorted by similarity to ``name``, most similar first."""
    choices = list(valid)
    return difflib.get_close_matches(name, choices, n=len(choices), cutoff=0.0)


def unknown_name_error(kind: str, name: object, valid: Iterable[str]) -> FadError:
    """A FadError naming ``name`` and listing the valid names, closest first."""
    listed = ", ".join(closest_first(str(name), valid))
    return FadError(f"unknown {kind} {name!r}; valid: {listed}")


def build_op(name: str, channels: int) -> nn.Module:
    """Build the op ``name`` on ``channels`` channels: [N, C, H, W] -> [N, C, H, W]."""
    if name not in OPS:
        raise unknown_name_error("op", name, OPS)
    return OPS[name](channels)


def op_spec(name: str) -> OpSpec:
    """The structure of a stacked op (every op but ``none``)."""
    if name not in OP_SPECS:
        raise unknown_name_error("op", name, OP_SPECS)
    return OP_SPECS[name]


def space_ops(space: str) -> tuple[str, ...]:
    """The op names of a search space in alpha-column order (``none`` last)."""
    if space not in SPACES:
        raise unknown_name_error("search space", space, SPACES)
    return SPACES[space]


def check_group_norm_width(name: str, value: int) -> None:
    """A width that GroupNorm(32) can split: a positive multiple of GN_GROUPS, else a FadError
    naming ``name``."""
    if value < GN_GROUPS or value % GN_GROUPS:
        raise FadError(
            f"{name}: must be a positive multiple of {GN_GROUPS} (GroupNorm), got {value}"
        )


def check_partial_width(name: str, channels: int, parts: int) -> None:
    """Partial channels: ``channels`` split in ``parts``, one part through the ops, which
    GroupNorm must split (below 32 channels, one group per channel)."""
    if parts < 1 or channels % parts:
        raise FadError(f"{name}: {channels} channels cannot be split in {parts} equal parts")
    width = channels // parts
    if width > GN_GROUPS and width % GN_GROUPS:
        raise FadError(
            f"{name}: the ops' share of {channels} channels, {width}, must be at most "
            f"{GN_GROUPS} or a multiple of {GN_GROUPS} (GroupNorm)"
        )


def check_op_names(names: Sequence[str]) -> None:
    """Raise FadError on an unknown or repeated op name."""
    for name in names:
        if name not in OPS:
            raise unknown_name_error("op", name, OPS)
    if len(set(names)) != len(names):
        raise FadError(f"repeated op names in {list(names)}")

"""Towers for the FCOS and RetinaNet heads -- the one seam between search and detection.

Every tower maps one FPN level [N, W, H, W'] to [N, W, H, W']; the head calls
``box = box_tower(F)`` then ``cls = cls_tower(F, box)`` on each level (weights shared across
levels). Three kinds, chosen when the tower is built (never by a flag in ``forward``):

- ``StandardTower``: NUM_CONVS x (3x3 conv -> GroupNorm -> ReLU) as FCOS, or (3x3 conv -> ReLU)
  as RetinaNet (``TowerSpec.standard_norm``).
- ``FixedTower``: the stacked cells of a genotype, then a 1x1 "reduce" conv back to W.
- ``SearchTower``: stacked search cells sharing one set of alphas, then the reduce conv.

A cell tower's first cell reads (box_feature, F) when a box feature is given (the cls tower sees
the box representation) and (F, F) otherwise; cell k+1 reads (s1 of cell k, output of cell k).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fad.errors import FadError
from fad.search_space.cells import FixedCell, SearchCell
from fad.search_space.genotype import (
    INPUT_NODES,
    ROLES,
    Genotype,
    derive_genotype,
    validate_genotype,
)
from fad.search_space.ops import (
    NONE,
    ConvUnit,
    check_group_norm_width,
    check_partial_width,
    space_ops,
    unknown_name_error,
)
from fad.search_space.relaxation import NodeWeights, Relaxation, softmax_relaxation
from fad.search_space.repshare import decouple_as_identity, fix_op_scales

MODES = ("standard", "search", "genotype")
DECOUPLE_INITS = ("default", "identity")
ALPHA_INIT_STD = 1e-3
HEAD_INIT_STD = 0.01


@dataclass(frozen=True)
class CellTowerSpec:
    """One FAD tower (MODEL.FAD.*_BOX / *_CLS); ``enabled=False`` means the standard tower."""

    enabled: bool = True
    num_cells: int = 2
    num_nodes: int = 3
    edge_channels: int = 96
    genotype: Genotype | None = None


@dataclass(frozen=True)
class TowerSpec:
    """What ``build_towers`` builds: explicit fields, validated on creation."""

    mode: str = "standard"
    channels: int = 256
    num_convs: int = 4
    box: CellTowerSpec = field(default_factory=CellTowerSpec)
    cls: CellTowerSpec = field(default_factory=CellTowerSpec)
    repshare: bool = True
    space: str = "released"
    standard_norm: bool = True  # GroupNorm in the standard towers (FCOS); False: RetinaNet's
    head_init_reduce: tuple[str, ...] = ("cls",)  # roles whose reduce conv gets N(0, 0.01)
    partial_channels: int = 1  # search edges: 1 / K of their channels through the ops (PC-DARTS)
    edge_normalization: bool = False  # search towers: a weight per edge, softmax(beta) (PC-DARTS)
    decouple_init: str = "default"  # RepShare's decouple 1x1s: "default" (PyTorch), "identity"
    search_none: bool = True  # search towers: 'none' among the ops (its alpha column), as DARTS
    search_affine: bool = True  # search towers: ops' GroupNorm affine and decouple 1x1s learned

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise unknown_name_error("tower mode", self.mode, MODES)
        if self.decouple_init not in DECOUPLE_INITS:
            raise unknown_name_error("decouple init", self.decouple_init, DECOUPLE_INITS)
        space_ops(self.space)
        _check_positive("TowerSpec.num_convs", self.num_convs)
        check_group_norm_width("TowerSpec.channels", self.channels)
        for role in self.head_init_reduce:
            if role not in ROLES:
                raise unknown_name_error("TowerSpec.head_init_reduce role", role, ROLES)
        for role in ROLES:
            tower: CellTowerSpec = getattr(self, role)
            if self.mode == "standard" or not tower.enabled:
                continue
            _check_positive(f"TowerSpec.{role}.num_cells", tower.num_cells)
            _check_positive(f"TowerSpec.{role}.num_nodes", tower.num_nodes)
            check_group_norm_width(f"TowerSpec.{role}.edge_channels", tower.edge_channels)
            if self.mode == "search":
                check_partial_width(
                    f"TowerSpec.{role}: partial_channels {self.partial_channels}",
                    tower.edge_channels,
                    self.partial_channels,
                )
            if self.mode == "genotype":
                if tower.genotype is None:
                    raise FadError(f"TowerSpec.{role}.genotype: required in mode 'genotype'")
                validate_genotype(
                    tower.genotype, num_nodes=tower.num_nodes, where=f"TowerSpec.{role}.genotype"
                )


def _check_positive(name: str, value: int) -> None:
    if value < 1:
        raise FadError(f"{name}: must be >= 1, got {value}")


def _init_normal(module: nn.Module) -> None:
    """The head init of FCOS and RetinaNet: every conv's weight ~ N(0, 0.01), bias 0."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.normal_(layer.weight, std=HEAD_INIT_STD)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class ComputePath(Protocol):
    """How a tower runs over all FPN levels: ``path(tower, features, box_features)`` returns
    what ``tower.forward_each_level`` would (`fad.search_space.paths` sets it)."""

    def __call__(
        self, tower: Tower, features: Sequence[Tensor], box_features: Sequence[Tensor] | None
    ) -> list[Tensor]: ...


class Tower(nn.Module):
    """Base of every tower: [N, W, H, W'] (and the box tower's output) -> [N, W, H, W']."""

    out_channels: int
    compute_path: ComputePath | None = None  # None: the plain modules, one level at a time
    # `levels_by_path` compiled (`fad.modeling.speed.compile_towers`), called with the tower
    compiled_levels: Callable[..., list[Tensor]] | None = None

    def forward(self, feature: Tensor, box_feature: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def forward_levels(
        self, features: Sequence[Tensor], box_features: Sequence[Tensor] | None = None
    ) -> list[Tensor]:
        """The tower on every FPN level ([N, W, H_l, W_l] -> same, weights shared), compiled
        when the tower was, by its compute path. Heads call towers through this."""
        if self.compiled_levels is not None:
            return self.compiled_levels(self, features, box_features)
        return self.levels_by_path(features, box_features)

    def levels_by_path(
        self, features: Sequence[Tensor], box_features: Sequence[Tensor] | None = None
    ) -> list[Tensor]:
        """Every level by the compute path when one is set, else level by level."""
        if self.compute_path is not None:
            return self.compute_path(self, features, box_features)
        return self.forward_each_level(features, box_features)

    def forward_each_level(
        self, features: Sequence[Tensor], box_features: Sequence[Tensor] | None = None
    ) -> list[Tensor]:
        """The plain per-level loop (the reference every compute path equals)."""
        if box_features is None:
            return [self(feature) for feature in features]
        return [self(f, b) for f, b in zip(features, box_features, strict=True)]


def _conv_relu(channels: int) -> nn.Sequential:
    """RetinaNet's tower unit: 3x3 conv -> ReLU (no normalisation)."""
    return nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU())


class StandardTower(Tower):
    """``num_convs`` x (3x3 conv -> GN -> ReLU) as FCOS, or (3x3 conv -> ReLU) as RetinaNet when
    ``norm`` is False; weights N(0, 0.01), bias 0 in both; ignores ``box_feature``."""

    def __init__(self, channels: int, num_convs: int, norm: bool = True) -> None:
        super().__init__()
        self.out_channels = channels

        def unit() -> nn.Module:
            if norm:
                return ConvUnit(nn.Conv2d(channels, channels, 3, padding=1), channels)
            return _conv_relu(channels)

        self.layers = nn.Sequential(*(unit() for _ in range(num_convs)))
        _init_normal(self.layers)

    def forward(self, feature: Tensor, box_feature: Tensor | None = None) -> Tensor:
        return self.layers(feature)


def _run_cells(
    cells: nn.ModuleList, feature: Tensor, box_feature: Tensor | None, *args: object
) -> Tensor:
    """Stack the cells: cell k+1 reads (s1 of cell k, output of cell k)."""
    s0, s1 = (feature if box_feature is None else box_feature), feature
    for cell in cells:
        s0, s1 = s1, cell(s0, s1, *args)
    return s1


class CellTower(Tower):
    """Stacked cells and the 1x1 reduce conv (num_nodes * W -> W) of a FAD tower.

    ``role`` ("box" or "cls") names the tower. ``head_init`` gives the reduce conv the head init
    (N(0, 0.01), bias 0), else it keeps PyTorch's default init: as the original, FCOS inits only
    the cls reduce conv so, RetinaNet both.
    """

    def __init__(
        self, role: str, cells: list[nn.Module], channels: int, head_init: bool = False
    ) -> None:
        super().__init__()
        self.role = role
        self.out_channels = channels
        self.cells = nn.ModuleList(cells)
        self.reduce = nn.Conv2d(cells[-1].out_channels, channels, 1)
        if head_init:
            _init_normal(self.reduce)

    def forward_cells(self, feature: Tensor, box_feature: Tensor | None = None) -> Tensor:
        """The stacked cells alone: [N, W, H, W'] -> [N, num_nodes * W, H, W']."""
        raise NotImplementedError

    def forward(self, feature: Tensor, box_feature: Tensor | None = None) -> Tensor:
        return self.reduce(self.forward_cells(feature, box_feature))


class FixedTower(CellTower):
    """The cells of a genotype: [N, W, H, W'] (+ box feature) -> [N, W, H, W']."""

    def forward_cells(self, feature: Tensor, box_feature: Tensor | None = None) -> Tensor:
        return _run_cells(self.cells, feature, box_feature)


class SearchTower(CellTower):
    """Search cells sharing this tower's alphas: one [2 + k, n_ops] parameter per node k, and with
    ``edge_normalization`` one [2 + k] beta per node (the edges' weights, PC-DARTS).

    ``relaxation`` turns them into what the cells mix by (default DARTS's softmax); a search
    method sets another one (e.g. GDAS's sampling, `fad.search_space.relaxation`).
    """

    def __init__(
        self,
        role: str,
        cells: list[nn.Module],
        channels: int,
        op_names: tuple[str, ...],
        head_init: bool = False,
        edge_normalization: bool = False,
    ) -> None:
        super().__init__(role, cells, channels, head_init)
        self.op_names = op_names
        num_nodes = len(cells[0].nodes)
        self.alphas = nn.ParameterList(
            nn.Parameter(ALPHA_INIT_STD * torch.randn(INPUT_NODES + k, len(op_names)))
            for k in range(num_nodes)
        )
        self.betas = (
            nn.ParameterList(
                nn.Parameter(ALPHA_INIT_STD * torch.randn(INPUT_NODES + k))
                for k in range(num_nodes)
            )
            if edge_normalization
            else None
        )
        self.relaxation: Relaxation = softmax_relaxation

    def arch_params(self) -> list[nn.Parameter]:
        """The alphas, then the betas (if any)."""
        return [*self.alphas, *(self.betas if self.betas is not None else ())]

    def node_weights(self) -> list[NodeWeights]:
        """What each node mixes by, from the relaxation (drawn once per call when it samples)."""
        betas = None if self.betas is None else list(self.betas)
        return self.relaxation(list(self.alphas), betas)

    def forward_cells(
        self,
        feature: Tensor,
        box_feature: Tensor | None = None,
        node_weights: list[NodeWeights] | None = None,
    ) -> Tensor:
        weights = self.node_weights() if node_weights is None else node_weights
        return _run_cells(self.cells, feature, box_feature, weights)

    def forward_each_level(
        self, features: Sequence[Tensor], box_features: Sequence[Tensor] | None = None
    ) -> list[Tensor]:
        """Every FPN level with the same node weights (one sample for all levels)."""
        weights = self.node_weights()
        boxes = [None] * len(features) if box_features is None else box_features
        return [
            self.reduce(self.forward_cells(f, b, weights))
            for f, b in zip(features, boxes, strict=True)
        ]

    def edge_weights(self) -> list[Tensor] | None:
        """softmax(beta) per node ([2 + k] each), None without edge normalisation."""
        if self.betas is None:
            return None
        return [F.softmax(beta.detach(), dim=-1) for beta in self.betas]

    def genotype(self) -> Genotype:
        """The discrete cell of the current alphas (and betas; see ``derive_genotype``)."""
        return derive_genotype(list(self.alphas), self.op_names, self.edge_weights())


def _cells(
    spec: TowerSpec, tower: CellTowerSpec, make: Callable[..., nn.Module]
) -> list[nn.Module]:
    """Build the stack: cell 0 reads (W, W); cell k+1 reads (input s1 of cell k, its output)."""
    cells = []
    c0 = c1 = spec.channels
    for _ in range(tower.num_cells):
        cell = make(in_channels=(c0, c1), node_channels=spec.channels)
        cells.append(cell)
        c0, c1 = c1, cell.out_channels
    return cells


def build_tower(spec: TowerSpec, role: str) -> Tower:
    """The ``role`` ("box" or "cls") tower of ``spec``."""
    tower: CellTowerSpec = getattr(spec, role)
    if spec.mode == "standard" or not tower.enabled:
        return StandardTower(spec.channels, spec.num_convs, spec.standard_norm)
    head_init = role in spec.head_init_reduce
    if spec.mode == "genotype":
        make = functools.partial(FixedCell, tower.genotype, edge_channels=tower.edge_channels)
        return FixedTower(role, _cells(spec, tower, make), spec.channels, head_init)
    op_names = tuple(n for n in space_ops(spec.space) if spec.search_none or n != NONE)
    make = functools.partial(
        SearchCell,
        tower.num_nodes,
        edge_channels=tower.edge_channels,
        op_names=op_names,
        repshare=spec.repshare,
        partial=spec.partial_channels,
    )
    cells = _cells(spec, tower, make)
    for cell in cells:
        if not spec.search_affine:
            fix_op_scales(cell)
        elif spec.decouple_init == "identity":
            decouple_as_identity(cell)
    return SearchTower(
        role, cells, spec.channels, op_names, head_init, edge_normalization=spec.edge_normalization
    )


def build_towers(spec: TowerSpec) -> tuple[Tower, Tower]:
    """(box_tower, cls_tower) of ``spec``."""
    return build_tower(spec, "box"), build_tower(spec, "cls")


def search_towers(module: nn.Module) -> Iterator[SearchTower]:
    """Every search tower inside ``module`` (a head, a detector, a DDP wrapper...)."""
    return (m for m in module.modules() if isinstance(m, SearchTower))


def named_alphas(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(name, parameter) of every search tower's architecture parameters inside ``module`` (the
    alphas, and the betas of edge normalisation), names as in state_dict."""
    ids = {id(p) for tower in search_towers(module) for p in tower.arch_params()}
    return [(name, p) for name, p in module.named_parameters() if id(p) in ids]


def alphas(module: nn.Module) -> list[nn.Parameter]:
    """The architecture parameters inside ``module`` (alphas, and betas where there are)."""
    return [p for _, p in named_alphas(module)]


def network_params(module: nn.Module) -> list[nn.Parameter]:
    """Every parameter of ``module`` that is not an alpha (the network's weights)."""
    ids = {id(p) for p in alphas(module)}
    return [p for p in module.parameters() if id(p) not in ids]


def derive_genotypes(model: nn.Module) -> dict[str, Genotype]:
    """{"box": ..., "cls": ...} for the search towers inside ``model`` (absent when not searched)."""
    genotypes: dict[str, Genotype] = {}
    for tower in search_towers(model):
        if tower.role in genotypes:
            raise FadError(f"two search towers with role {tower.role!r} in the model")
        genotypes[tower.role] = tower.genotype()
    return genotypes

"""Cells and towers: shapes for 1 and 2 cells, alphas and their gradients, parameter counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fad.errors import FadError
from fad.search_space.cells import FixedCell, SearchCell
from fad.search_space.genotype import PRESETS, Genotype
from fad.search_space.ops import SPACES, ConvUnit
from fad.search_space.towers import (
    CellTowerSpec,
    FixedTower,
    SearchTower,
    StandardTower,
    TowerSpec,
    alphas,
    build_towers,
    derive_genotypes,
    named_alphas,
    network_params,
)

W, C = 64, 32  # small node and edge widths for speed
BOX, CLS = PRESETS["paper"]


def _spec(mode: str, cells: int = 1, **kwargs: object) -> TowerSpec:
    box = CellTowerSpec(num_cells=cells, edge_channels=C, genotype=BOX)
    cls = CellTowerSpec(num_cells=cells, edge_channels=C, genotype=CLS)
    return TowerSpec(mode=mode, channels=W, num_convs=2, box=box, cls=cls, **kwargs)


def _run(box_tower: nn.Module, cls_tower: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    feature = torch.randn(2, W, 8, 8)
    box = box_tower(feature)
    return box, cls_tower(feature, box)


@pytest.mark.parametrize("cells", [1, 2])
@pytest.mark.parametrize("mode", ["search", "genotype"])
def test_tower_and_cell_shapes(mode: str, cells: int) -> None:
    box_tower, cls_tower = build_towers(_spec(mode, cells))
    kind = SearchTower if mode == "search" else FixedTower
    assert isinstance(box_tower, kind) and isinstance(cls_tower, kind)
    assert len(box_tower.cells) == cells
    box, cls = _run(box_tower, cls_tower)
    assert box.shape == cls.shape == (2, W, 8, 8)
    assert box_tower.out_channels == cls_tower.out_channels == W
    feature = torch.randn(2, W, 8, 8)
    assert box_tower.forward_cells(feature).shape == (2, 3 * W, 8, 8)


@pytest.mark.parametrize("cell_kind", ["search", "fixed"])
def test_cell_maps_wide_inputs_to_node_width(cell_kind: str) -> None:
    if cell_kind == "search":
        cell = SearchCell(3, (W, 3 * W), W, C, SPACES["released"])
        weights_ = [torch.softmax(torch.randn(2 + k, 11), -1) for k in range(3)]
        args = (weights_,)
    else:
        cell = FixedCell(BOX, (W, 3 * W), W, C)
        args = ()
    assert isinstance(cell.preprocess[0], nn.Identity)
    pre = cell.preprocess[1]
    assert (
        isinstance(pre, ConvUnit) and pre.body.kernel_size == (1, 1) and pre.body.bias is not None
    )
    assert pre.body.in_channels == 3 * W
    out = cell(torch.randn(1, W, 8, 8), torch.randn(1, 3 * W, 8, 8), *args)
    assert out.shape == (1, 3 * W, 8, 8) and cell.out_channels == 3 * W


def test_edge_bias_fixed_but_not_search() -> None:
    fixed = FixedCell(BOX, (W, W), W, C)
    narrow, _, widen = fixed.nodes[0][0]
    assert (narrow.in_channels, narrow.out_channels, widen.out_channels) == (W, C, W)
    assert narrow.bias is not None and widen.bias is not None
    search = SearchCell(3, (W, W), W, C, SPACES["released"])
    edge = search.nodes[0][0]
    assert edge.narrow.bias is None and edge.widen.bias is None
    assert [len(node) for node in search.nodes] == [2, 3, 4]


def test_edge_without_1x1_when_widths_match() -> None:
    cell = FixedCell(BOX, (C, C), C, C)
    assert isinstance(cell.nodes[0][0][0], nn.Identity)
    search = SearchCell(3, (C, C), C, C, SPACES["released"])
    assert isinstance(search.nodes[0][0].narrow, nn.Identity)


def test_cls_tower_reads_the_box_feature() -> None:
    torch.manual_seed(0)
    _, cls_tower = build_towers(_spec("genotype", 2))
    feature = torch.randn(1, W, 8, 8)
    first = cls_tower(feature, torch.randn(1, W, 8, 8))
    second = cls_tower(feature, torch.randn(1, W, 8, 8))
    assert not torch.allclose(first, second)
    standard = StandardTower(W, 2)
    torch.testing.assert_close(standard(feature, torch.randn(1, W, 8, 8)), standard(feature))


def test_gradients_reach_every_alpha_and_weight() -> None:
    torch.manual_seed(0)
    box_tower, cls_tower = build_towers(_spec("search", 2))
    model = nn.ModuleDict({"box": box_tower, "cls": cls_tower})
    feature = torch.randn(1, W, 4, 4)
    box = box_tower(feature)
    (box.square().mean() + cls_tower(feature, box).square().mean()).backward()
    found = alphas(model)
    assert len(found) == 6
    for alpha in found:
        assert alpha.grad is not None and torch.count_nonzero(alpha.grad) == alpha.numel()
    for param in network_params(model):
        assert param.grad is not None, "a weight received no gradient"


def test_search_cell_gradients_reach_its_weights_input() -> None:
    cell = SearchCell(3, (W, W), W, C, SPACES["released"], repshare=False)
    raw = [torch.randn(2 + k, 11, requires_grad=True) for k in range(3)]
    out = cell(torch.randn(1, W, 8, 8), torch.randn(1, W, 8, 8), [a.softmax(-1) for a in raw])
    out.sum().backward()
    assert all(torch.count_nonzero(a.grad) == a.numel() for a in raw)


def test_alphas_are_registered_parameters() -> None:
    box_tower, cls_tower = build_towers(_spec("search", space="with_r3"))
    model = nn.ModuleDict({"head": nn.ModuleDict({"box": box_tower, "cls": cls_tower})})
    names = [name for name, _ in named_alphas(model)]
    assert names == [f"head.{r}.alphas.{k}" for r in ("box", "cls") for k in range(3)]
    assert all(name in model.state_dict() for name in names)
    assert [tuple(a.shape) for a in box_tower.alphas] == [(2, 13), (3, 13), (4, 13)]
    ids = {id(p) for p in alphas(model)}
    assert len(network_params(model)) + len(ids) == len(list(model.parameters()))
    assert not ids & {id(p) for p in network_params(model)}
    model.to(torch.float64)
    assert all(a.dtype == torch.float64 for a in alphas(model))


def test_derive_genotypes_from_hand_set_alphas() -> None:
    box_tower, cls_tower = build_towers(_spec("search"))
    with torch.no_grad():
        for k, alpha in enumerate(box_tower.alphas):
            alpha.zero_()
            alpha[0, 4] = 1.0  # std_conv_3x3_x3 from s0
            alpha[1 + k, 10] = 9.0  # 'none' is never chosen
            alpha[1 + k, 5] = 2.0  # sinSep_conv_3x3 from the last state, ranked first
    genotypes = derive_genotypes(nn.ModuleList([box_tower, cls_tower]))
    assert set(genotypes) == {"box", "cls"}
    assert genotypes["box"].normal == [
        [("sinSep_conv_3x3", 1 + k), ("std_conv_3x3_x3", 0)] for k in range(3)
    ]
    assert isinstance(genotypes["cls"], Genotype)


def test_unsearched_tower_is_standard() -> None:
    spec = _spec("search")
    spec = TowerSpec(
        mode="search", channels=W, num_convs=2, box=CellTowerSpec(enabled=False), cls=spec.cls
    )
    box_tower, cls_tower = build_towers(spec)
    assert isinstance(box_tower, StandardTower) and isinstance(cls_tower, SearchTower)
    assert set(derive_genotypes(nn.ModuleList([box_tower, cls_tower]))) == {"cls"}
    assert all(isinstance(t, StandardTower) for t in build_towers(_spec("standard")))


def test_standard_tower_layers_and_init() -> None:
    tower = StandardTower(256, 4)
    convs = [m for m in tower.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 4 and all(c.kernel_size == (3, 3) for c in convs)
    assert sum(p.numel() for p in tower.parameters()) == 4 * (9 * 256 * 256 + 256 + 2 * 256)
    assert all(torch.count_nonzero(c.bias) == 0 for c in convs)
    assert 0.008 < convs[0].weight.std().item() < 0.012


def test_reduce_init_as_the_original() -> None:
    box_tower, cls_tower = build_towers(_spec("genotype"))
    assert torch.count_nonzero(cls_tower.reduce.bias) == 0
    assert 0.008 < cls_tower.reduce.weight.std().item() < 0.012
    assert torch.count_nonzero(box_tower.reduce.bias) > 0  # PyTorch default init, as the original


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mode": "augment"}, "unknown tower mode 'augment'"),
        ({"space": "big"}, "unknown search space 'big'"),
        ({"channels": 48}, "TowerSpec.channels: must be a positive multiple of 32"),
        ({"box": CellTowerSpec(edge_channels=40)}, "TowerSpec.box.edge_channels"),
        ({"cls": CellTowerSpec(genotype=None)}, "TowerSpec.cls.genotype: required"),
        ({"box": CellTowerSpec(num_nodes=4, genotype=BOX)}, "3 nodes, expected 4"),
        ({"cls": CellTowerSpec(num_cells=0, genotype=CLS)}, "TowerSpec.cls.num_cells"),
    ],
)
def test_tower_spec_validation(changes: dict, message: str) -> None:
    fields = {
        "mode": "genotype",
        "box": CellTowerSpec(genotype=BOX),
        "cls": CellTowerSpec(genotype=CLS),
    }
    with pytest.raises(FadError, match=message):
        TowerSpec(**(fields | changes))


# Parameter counts by hand from the layer list (W = 256, 2 cells, 3 nodes).
OP_UNITS = {
    "std_conv_3x3": ["std"],
    "std_conv_3x3_x2": ["std"] * 2,
    "std_conv_3x3_x3": ["std"] * 3,
    "std_conv_3x3+dil_conv_3x3": ["std", "dil"],
    "std_conv_3x3_x2+dil_conv_3x3": ["std", "std", "dil"],
    "sinSep_conv_3x3": ["sinSep"],
    "sinSep_conv_3x3_x2": ["sinSep"] * 2,
    "sinSep_conv_3x3_x3": ["sinSep"] * 3,
    "sinSep_conv_3x3+dil_conv_3x3": ["sinSep", "dil"],
    "sinSep_conv_3x3_x2+dil_conv_3x3": ["sinSep", "sinSep", "dil"],
}


def _unit(kind: str, c: int) -> int:
    norm = 2 * c  # GroupNorm weight and bias
    conv = {"std": 9 * c * c + c, "sinSep": 9 * c + c * c + c, "dil": (9 * c + c) + (c * c + c)}
    return conv[kind] + norm


def _cells_by_hand(genotype: Genotype, c: int, w: int = 256) -> int:
    edges = sum(
        (w * c + c) + sum(_unit(k, c) for k in OP_UNITS[op]) + (c * w + w)
        for node in genotype.normal
        for op, _ in node
    )
    preprocess = 3 * w * w + w + 2 * w  # cell 1's s1: 1x1 (3W -> W, bias) + GN
    return 2 * edges + preprocess


PINNED = {  # (preset, C): (box cells, cls cells)
    ("paper", 96): (1_935_552, 1_644_288),
    ("paper", 128): (3_013_632, 2_494_208),
    ("alt", 96): (2_518_848, 2_060_736),
    ("alt", 128): (4_053_504, 3_237_888),
}
REDUCE = 3 * 256 * 256 + 256


@pytest.mark.parametrize(("preset", "c"), sorted(PINNED))
def test_preset_parameter_counts(preset: str, c: int) -> None:
    box_g, cls_g = PRESETS[preset]
    spec = TowerSpec(
        mode="genotype",
        box=CellTowerSpec(edge_channels=c, genotype=box_g),
        cls=CellTowerSpec(edge_channels=c, genotype=cls_g),
    )
    with torch.device("meta"):
        towers = build_towers(spec)
    counts = tuple(sum(p.numel() for p in t.cells.parameters()) for t in towers)
    assert counts == PINNED[(preset, c)]
    assert counts == (_cells_by_hand(box_g, c), _cells_by_hand(cls_g, c))
    totals = tuple(sum(p.numel() for p in t.parameters()) for t in towers)
    assert totals == tuple(n + REDUCE for n in counts)

"""`fad genotype show|plot`: inspect the genotypes of a preset (paper, alt) or a genotype file."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from fad.commands.common import parse_size
from fad.modeling.cost import module_cost
from fad.search_space.genotype import PRESETS, ROLES, Genotype, load_genotypes
from fad.search_space.towers import CellTowerSpec, FixedTower, TowerSpec, build_tower
from fad.viz.genotype_plot import INSTALL_HINT, dot_available, plot_genotype


def fixed_tower(
    genotype: Genotype, role: str, channels: int, cells: int, node_channels: int
) -> FixedTower:
    """The FAD tower of ``genotype`` (its weights on the meta device: shapes only)."""
    tower = CellTowerSpec(
        num_cells=cells, num_nodes=genotype.num_nodes, edge_channels=channels, genotype=genotype
    )
    towers = {r: CellTowerSpec(enabled=False) for r in ROLES} | {role: tower}
    spec = TowerSpec(mode="genotype", channels=node_channels, **towers)
    with torch.device("meta"):
        return build_tower(spec, role)  # type: ignore[return-value]


def cells_cost(tower: FixedTower, height: int, width: int) -> tuple[int, int]:
    """(parameters, FLOPs) of the stacked cells on one [1, W, height, width] level.

    FLOPs as ``fad.modeling.cost`` counts them: convolutions and matrix products only, one
    multiply-add = 2 FLOPs (GroupNorm, ReLU and additions are not counted).
    """
    feature = torch.empty(1, tower.out_channels, height, width, device="meta")
    return module_cost(tower.cells, feature, feature, call=tower.forward_cells)


def run_show(args: argparse.Namespace) -> int:
    height, width = parse_size(args.size)
    totals = [0, 0]
    for role, genotype in load_genotypes(args.genotypes).items():
        tower = fixed_tower(genotype, role, args.channels, args.cells, args.node_channels)
        params, flops = cells_cost(tower, height, width)
        totals = [totals[0] + params, totals[1] + flops]
        print(f"{role} tower: {genotype}")
        print(
            f"  {args.cells} cells, C={args.channels}, W={args.node_channels}: "
            f"{params:,} parameters, {flops / 1e9:.3f} GFLOPs on {height}x{width}"
        )
    print(f"all cells: {totals[0]:,} parameters, {totals[1] / 1e9:.3f} GFLOPs")
    print("(cells only, without the 1x1 reduce and the predictors; 1 multiply-add = 2 FLOPs)")
    return 0


def run_plot(args: argparse.Namespace) -> int:
    out = Path(args.out)
    for role, genotype in load_genotypes(args.genotypes).items():
        for path in plot_genotype(genotype, out / f"{role}_cell", f"{role} tower cell"):
            print(path)
    if not dot_available():
        print(INSTALL_HINT)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``fad genotype show`` and ``fad genotype plot``."""
    parser = subparsers.add_parser(
        "genotype", help="show or draw genotypes", description=__doc__.splitlines()[0]
    )
    actions = parser.add_subparsers(dest="genotype_command", metavar="ACTION", required=True)
    source_help = f"a preset ({', '.join(PRESETS)}) or a genotype file (box line, cls line)"

    show = actions.add_parser("show", help="print genotypes, cell parameters and FLOPs")
    show.add_argument("genotypes", metavar="GENOTYPES", help=source_help)
    show.add_argument("--channels", type=int, default=96, help="edge width C (default 96)")
    show.add_argument("--cells", type=int, default=2, help="stacked cells per tower (default 2)")
    show.add_argument("--size", default="100x152", help="FPN level size HxW (default 100x152)")
    show.add_argument("--node-channels", type=int, default=256, help="node width W (default 256)")
    show.set_defaults(func=run_show)

    plot = actions.add_parser("plot", help="draw each tower's cell (graphviz: .gv, .png, .svg)")
    plot.add_argument("genotypes", metavar="GENOTYPES", help=source_help)
    plot.add_argument("--out", required=True, help="output folder")
    plot.set_defaults(func=run_plot)

"""The FAD search space: ops, RepShare, genotypes, cells and the towers the FCOS head plugs in."""

from __future__ import annotations

from fad.search_space.genotype import (
    PRESETS,
    Genotype,
    derive_genotype,
    load_genotypes,
    parse_genotype,
    read_genotype_file,
    validate_genotype,
    write_genotype_file,
)
from fad.search_space.ops import OPS, SPACES, build_op, space_ops
from fad.search_space.towers import (
    CellTowerSpec,
    FixedTower,
    SearchTower,
    StandardTower,
    Tower,
    TowerSpec,
    alphas,
    build_tower,
    build_towers,
    derive_genotypes,
    named_alphas,
    network_params,
)

__all__ = [
    "OPS",
    "PRESETS",
    "SPACES",
    "CellTowerSpec",
    "FixedTower",
    "Genotype",
    "SearchTower",
    "StandardTower",
    "Tower",
    "TowerSpec",
    "alphas",
    "build_op",
    "build_tower",
    "build_towers",
    "derive_genotype",
    "derive_genotypes",
    "load_genotypes",
    "named_alphas",
    "parse_genotype",
    "read_genotype_file",
    "space_ops",
    "validate_genotype",
    "network_params",
    "write_genotype_file",
]

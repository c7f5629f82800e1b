"""Arguments shared by the subcommands, spelled as in the original tools."""

from __future__ import annotations

import argparse

from yacs.config import CfgNode as CN

from fad.config import load_config
from fad.errors import FadError
from fad.search_space.genotype import Genotype, load_genotypes


def parse_size(text: str, low: int = 1, high: int | None = None) -> tuple[int, int]:
    """``--size HxW`` (e.g. 800x1333) -> (height, width), each side in [low, high]; anything
    else is a one-line FadError naming the value."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise FadError(f"--size {text!r}: expected HxW (height x width), e.g. 800x1333")
    size = (int(parts[0]), int(parts[1]))
    if not all(low <= s <= (high or s) for s in size):
        bounds = f"in [{low}, {high}]" if high else f">= {low}"
        raise FadError(f"--size {text!r}: each side must be {bounds}")
    return size


def add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config-file", metavar="FILE", help="YAML config (original FAD keys)")
    parser.add_argument(
        "opts",
        nargs=argparse.REMAINDER,
        metavar="KEY VALUE",
        help="config overrides, e.g. SOLVER.MAX_ITER 100 OUTPUT_DIR out",
    )
    parser.add_argument(
        "--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS
    )


def add_genotype_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--genotype-file", metavar="FILE", help="genotype.log of a search (box line, cls line)"
    )
    group.add_argument("--genotype", metavar="NAME", help="a preset genotype: paper or alt")


def add_fresh_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="start from iteration 0 when OUTPUT_DIR holds checkpoints of which none loads "
        "(they are moved aside to NAME.unreadable-<n>, never deleted); without it such a "
        "folder is an error",
    )


def config_from_args(args: argparse.Namespace) -> CN:
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    return load_config(args.config_file, args.opts or [], world_size=world)


def genotypes_from_args(args: argparse.Namespace) -> dict[str, Genotype] | None:
    source = getattr(args, "genotype_file", None) or getattr(args, "genotype", None)
    return load_genotypes(source) if source else None

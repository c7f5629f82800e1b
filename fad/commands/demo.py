"""`fad demo [--out DIR] [--seed S | --seeds 0,1,2] [KEY VALUE ...]`: search, train, compare."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole FAD pipeline on shapes, compared with standard FCOS")
    p.add_argument("--out", default="training_dir/demo", help="output folder (default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--seeds",
        default=None,
        metavar="S1,S2,...",
        help="run the demo once per seed into OUT/seed_<s> and summarise mean and spread "
        "(finished seeds are reused)",
    )
    p.add_argument(
        "--random",
        type=int,
        default=0,
        metavar="N",
        help="with --seeds: also train N genotypes drawn uniformly from the space (and the "
        "paper's) exactly as the searched heads, and rank the searched heads among them",
    )
    p.add_argument(
        "opts",
        nargs=argparse.REMAINDER,
        metavar="KEY VALUE",
        help="overrides applied to the search and both trainings",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fad.demo import run_demo
    from fad.demo_seeds import parse_seeds, run_seed_study
    from fad.runtime.atomic import check_writable_folder
    from fad.runtime.logger import setup_logger

    check_writable_folder(Path(args.out), "--out")
    setup_logger(args.out)
    if args.seeds is not None:
        run_seed_study(args.out, args.opts or [], parse_seeds(args.seeds), random=args.random)
    else:
        run_demo(args.out, args.opts or [], seed=args.seed)
    return 0

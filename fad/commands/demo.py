"""`fad demo [--out DIR] [--seed S] [KEY VALUE ...]`: search, train, compare - the main job."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole FAD pipeline on shapes, compared with standard FCOS")
    p.add_argument("--out", default="training_dir/demo", help="output folder (default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "opts",
        nargs=argparse.REMAINDER,
        metavar="KEY VALUE",
        help="overrides applied to the search and both trainings",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fad.demo import run_demo
    from fad.engine.logger import setup_logger

    setup_logger(args.out)
    run_demo(args.out, args.opts or [], seed=args.seed)
    return 0

"""`fad demo [--level easy|hard] [--out DIR] [--seed S | --seeds 0,1,2 [--random N
[--random-every-seed]]] [KEY VALUE ...]`: search, train, compare.

Everything checkable is checked before stage 0 starts: the seeds (in range, not repeated), the
overrides against every stage's config with each seed, and `--out` writable; the demo then owns
`--out` (a second demo into it is refused in one line).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from fad.demo_level import DEFAULT_LEVEL, LEVELS

    p = sub.add_parser("demo", help="the whole FAD pipeline on shapes, compared with standard FCOS")
    p.add_argument(
        "--level",
        default=DEFAULT_LEVEL,
        choices=tuple(LEVELS),
        help="easy (default): shapes, fast, and flat for the search (every genotype trains "
        "alike); hard: shapes_hard with a 4x longer stage 0, where genotypes differ (about 2.5x "
        "the time)",
    )
    p.add_argument(
        "--out", default=None, help="output folder (default training_dir/demo, or demo_hard)"
    )
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
        "--random-every-seed",
        action="store_true",
        help="with --random: train every random genotype (and the paper's) with each seed, not "
        "the first only, rank by their mean AP and test whether genotypes differ more than "
        "seeds do (the random control's time times the seed count)",
    )
    p.add_argument(
        "opts",
        nargs=argparse.REMAINDER,
        metavar="KEY VALUE",
        help="overrides applied to the search and both trainings",
    )
    p.set_defaults(func=run)


def check_stage_configs(
    out: Path, opts: Sequence[str], seeds: Sequence[int], stage0_opts: Sequence[str] = ()
) -> None:
    """Load every stage's config with `opts` (stage 0: `stage0_opts` first) and each seed (a
    FadError names the first problem, e.g. `SEED must be in [0, ...]`), as the stages will,
    before any of them runs."""
    from fad.config import load_config
    from fad.demo import CONFIGS, packaged_config

    weights = str(out / "backbone" / "model_final.pth")
    for seed in seeds:
        for stage, name in CONFIGS.items():
            extra = ["SEED", str(seed), "OUTPUT_DIR", str(out / stage)]
            first = stage0_opts if stage == "backbone" else ()
            if stage != "backbone":
                extra += ["MODEL.WEIGHT", weights]
            load_config(packaged_config(name), [*first, *opts, *extra])


def run(args: argparse.Namespace) -> int:
    from fad.demo import run_demo
    from fad.demo_level import demo_level, stage_opts
    from fad.demo_seeds import parse_seeds, run_seed_study
    from fad.errors import FadError
    from fad.runtime.atomic import check_writable_folder
    from fad.runtime.lock import own_folder
    from fad.runtime.logger import setup_logger

    level = demo_level(args.level)
    if args.out is None:
        args.out = "training_dir/demo" + ("" if level.name == "easy" else f"_{level.name}")
    out, opts, stage0 = Path(args.out), stage_opts(level, args.opts or []), level.stage0_opts
    seeds = parse_seeds(args.seeds) if args.seeds is not None else [args.seed]
    if args.random < 0 or (args.random and args.seeds is None):
        raise FadError(f"--random N needs --seeds and N >= 0, got {args.random}")
    if args.random_every_seed and not args.random:
        raise FadError("--random-every-seed needs --random N")
    check_stage_configs(out, opts, seeds, stage0)
    check_writable_folder(out, "--out")
    owner = own_folder(out, "--out")
    setup_logger(args.out)
    try:
        if args.seeds is not None:
            every = args.random_every_seed
            run_seed_study(
                args.out,
                opts,
                seeds,
                random=args.random,
                random_every_seed=every,
                stage0_opts=stage0,
            )
        else:
            run_demo(args.out, opts, seed=args.seed, stage0_opts=stage0)
    finally:
        owner.release()
    return 0

"""`fad study random --config-file C --num N [--seeds S,..] [--genotype-file G] [--out DIR]
[KEY VALUE ...]`"""

from __future__ import annotations

import argparse

from fad.commands.common import add_config_args, add_genotype_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("study", help="controls for a searched head")
    studies = p.add_subparsers(dest="study", required=True)
    r = studies.add_parser(
        "random",
        help="train N genotypes drawn uniformly from the search space (and the paper's, and the "
        "searched one if given) with one config, and rank the searched one among them",
    )
    r.add_argument("--num", type=int, default=5, help="random genotypes (default %(default)s)")
    r.add_argument("--out", default="training_dir/random_study", help="default %(default)s")
    r.add_argument(
        "--max-gflops",
        type=float,
        default=0.0,
        metavar="G",
        help="draw only genotypes whose trained head costs at most G GFLOPs (the searched "
        "head's SOLVER.SEARCH.COST_BUDGET: a control of the same cost); 0: any",
    )
    r.add_argument(
        "--seeds",
        default="",
        metavar="S1,S2,...",
        help="train every genotype once per training seed (e.g. 0,1,2) and test whether the "
        "genotypes differ more than the seeds do; default: the config's SEED, once",
    )
    add_genotype_args(r)
    add_config_args(r)
    r.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fad.commands.common import genotypes_from_args
    from fad.demo_seeds import parse_seeds, random_control_lines
    from fad.errors import FadError
    from fad.runtime.atomic import check_writable_folder
    from fad.runtime.logger import setup_logger
    from fad.study_random import run_study

    if args.num < 2:
        raise FadError(f"--num {args.num}: a spread needs at least 2 random genotypes")
    if not args.config_file:
        raise FadError("--config-file: the FAD head's training config is required")
    if not 0 <= args.max_gflops < float("inf"):
        raise FadError(f"--max-gflops must be a finite number >= 0, got {args.max_gflops}")
    seeds = parse_seeds(args.seeds) if args.seeds else None
    out = Path(args.out)
    check_writable_folder(out, "--out")
    setup_logger(out)
    searched = genotypes_from_args(args)
    study = run_study(
        args.config_file, args.opts or [], out, args.num, searched, args.max_gflops, seeds
    )
    print("\n".join(random_control_lines(study)))
    return 0

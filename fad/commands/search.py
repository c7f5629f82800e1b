"""`fad search --config-file C [--use-tensorboard] [--resume] [KEY VALUE ...]`

The original was `python -m torch.distributed.launch tools/search_net.py --skip-test
--config-file C --use-tensorboard KEY VALUE ...`; the same arguments are accepted here
(`--skip-test` and `--local_rank` for compatibility: a search evaluates nothing).
"""

from __future__ import annotations

import argparse

from fad.commands.common import add_config_args, config_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search",
        help="search the FAD towers (writes genotype.log for `fad train --genotype-file`)",
    )
    p.add_argument("--use-tensorboard", action="store_true", help="write TensorBoard scalars")
    p.add_argument(
        "--resume",
        action="store_true",
        help="require a checkpoint in OUTPUT_DIR to resume from (resuming is automatic anyway)",
    )
    p.add_argument("--skip-test", action="store_true", help=argparse.SUPPRESS)
    add_config_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fad.search.searcher import run_search

    cfg = config_from_args(args)
    run_search(
        cfg,
        use_tensorboard=args.use_tensorboard,
        resume=args.resume,
        local_rank=args.local_rank,
    )
    return 0

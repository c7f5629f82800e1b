"""`fad train --config-file C [--genotype-file G | --genotype paper] [KEY VALUE ...]`"""

from __future__ import annotations

import argparse

from fad.commands.common import (
    add_config_args,
    add_genotype_args,
    config_from_args,
    genotypes_from_args,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train FCOS (standard head or the towers of a genotype)")
    add_genotype_args(p)
    p.add_argument("--use-tensorboard", action="store_true", help="write TensorBoard scalars")
    p.add_argument("--skip-test", action="store_true", help="do not evaluate after training")
    add_config_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fad.engine.train import run_training

    cfg = config_from_args(args)
    run_training(
        cfg,
        genotypes=genotypes_from_args(args),
        use_tensorboard=args.use_tensorboard,
        skip_test=args.skip_test,
        local_rank=args.local_rank,
    )
    return 0

"""`fad eval --config-file C [--genotype-file G] MODEL.WEIGHT w.pth [TEST.IMS_PER_BATCH 4]`"""

from __future__ import annotations

import argparse

from fad.commands.common import (
    add_config_args,
    add_genotype_args,
    config_from_args,
    genotypes_from_args,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="COCO AP of a weights file on DATASETS.TEST")
    add_genotype_args(p)
    add_config_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fad.engine.evaluate import evaluate_model
    from fad.engine.preflight import check_evaluation
    from fad.engine.run import start_run
    from fad.engine.trained import TrainedModel
    from fad.modeling.build import apply_speed_paths

    cfg = config_from_args(args)
    genotypes = genotypes_from_args(args)
    check_evaluation(cfg)
    trained = TrainedModel.read(cfg.MODEL.WEIGHT)  # all checked before anything is written
    ctx = start_run(cfg, local_rank=args.local_rank, log_name="eval_log.txt", write_config=False)
    model = trained.build(cfg, genotypes).to(ctx.device)
    apply_speed_paths(model, cfg)
    ctx.start_writing()
    evaluate_model(cfg, model, ctx, trained.class_names)
    return 0

"""`fad train`: build the detector from the config (and genotype), train with periodic atomic
checkpoints and exact resume, then evaluate."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn
from yacs.config import CfgNode as CN

from fad.data.build import build_train_loader
from fad.engine.evaluate import evaluate_model
from fad.engine.loop import LoopHooks, no_iterations, run_loop
from fad.engine.preflight import check_run
from fad.engine.run import (
    RunContext,
    open_tensorboard,
    prepare_training_data,
    start_from,
    start_run,
    train_loader_options,
)
from fad.engine.state import TrainState
from fad.engine.step import WeightStep, prepare_batch
from fad.engine.trained import checkpoint_meta
from fad.modeling.build import apply_speed_paths, build_detector
from fad.runtime.checkpoint import (
    CheckpointMeta,
    find_resume_point,
    save_checkpoint,
    set_rng_state,
)
from fad.runtime.distributed import wrap_ddp
from fad.search_space.genotype import Genotype

log = logging.getLogger("fad")
CHECKPOINT_KIND = "train"


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def run_training(
    cfg: CN,
    *,
    genotypes: dict[str, Genotype] | None = None,
    use_tensorboard: bool = False,
    skip_test: bool = False,
    local_rank: int | None = None,
    fresh: bool = False,
) -> dict[str, Any]:
    """Train (resuming from OUTPUT_DIR when it holds a checkpoint); returns timing and AP.

    Before anything is written: the preflight, and the checkpoints read (`fresh`: start from
    iteration 0 when none of them loads; see `find_resume_point`).
    """
    check_run(cfg, train=True, test=not skip_test)
    point = find_resume_point(Path(cfg.OUTPUT_DIR), fresh=fresh)
    ctx = start_run(cfg, local_rank=local_rank)
    start_from(point, ctx, fresh)
    datasets = prepare_training_data(cfg, ctx)
    class_names = list(datasets[0].class_names)
    resume = point.checkpoint
    model = build_detector(cfg, len(class_names), genotypes, load_weights=resume is None)
    model.to(ctx.device)
    apply_speed_paths(model, cfg)
    state = TrainState.build(model, cfg)
    start_iter = 0
    if resume is not None:
        start_iter = state.load(resume, str(point.path))
        log.info("resuming from %s at iteration %d", point.path, start_iter)
    ctx.start_writing()  # every check passed: config.yaml, log.txt, set-asides
    category_ids = [datasets[0].label_to_category_id[k] for k in range(1, len(class_names) + 1)]
    meta = checkpoint_meta(cfg, class_names, genotypes, CHECKPOINT_KIND, category_ids)
    if start_iter < cfg.SOLVER.MAX_ITER:
        rng = resume["rng"] if resume else None
        stats = _train_iterations(cfg, ctx, state, datasets, start_iter, meta, rng, use_tensorboard)
    else:
        stats = no_iterations()
        log.info("already trained to iteration %d", start_iter)
    result: dict[str, Any] = {"train": stats, "output_dir": str(ctx.output_dir)}
    if not skip_test and cfg.DATASETS.TEST:
        result["eval"] = evaluate_model(cfg, unwrap(model), ctx, class_names)
    return result


def _train_iterations(
    cfg: CN,
    ctx: RunContext,
    state: TrainState,
    datasets: list,
    start_iter: int,
    meta: CheckpointMeta,
    rng: dict[str, Any] | None,
    use_tensorboard: bool,
) -> dict[str, float]:
    max_iter = cfg.SOLVER.MAX_ITER
    batches = iter(build_train_loader(datasets, train_loader_options(cfg, ctx, start_iter)))
    if rng is not None:  # after the loader drew its own seeds, so the streams line up
        set_rng_state(rng)
    net = wrap_ddp(state.model, ctx.device)
    net.train()
    weight_step = WeightStep(
        net,
        state.optimizer,
        state.scheduler,
        ctx.device,
        clip_grad=cfg.SOLVER.CLIP_GRAD_NORM,
        precision=state.precision,
    )
    seed, flip_prob = cfg.SEED + ctx.rank, cfg.INPUT.HORIZONTAL_FLIP_PROB_TRAIN

    def step(iteration: int, batch) -> dict:
        batch = prepare_batch(
            batch, seed=seed, iteration=iteration, flip_prob=flip_prob, device=ctx.device
        )
        return weight_step(iteration, batch)

    def save(iteration: int, name: str | None = None) -> Path:
        name = name or f"model_{iteration:07d}.pth"
        return save_checkpoint(ctx.output_dir, name, state.payload(iteration, meta))

    writer = open_tensorboard(ctx, use_tensorboard)
    hooks = LoopHooks(
        save=save,
        checkpoint_period=cfg.SOLVER.CHECKPOINT_PERIOD,
        writer=writer,
        lr=lambda: state.optimizer.param_groups[0]["lr"],
        images_per_iter=cfg.SOLVER.IMS_PER_BATCH,
    )
    try:
        stats = run_loop(
            step, batches, start_iter=start_iter, max_iter=max_iter, hooks=hooks, device=ctx.device
        )
    finally:
        if writer is not None:
            writer.close()
    if ctx.rank == 0:
        log.info("saved %s", save(max_iter, "model_final.pth"))
    log.info(
        "training: %d iterations in %.1f s (%.2f it/s, %.1f images/s)",
        stats["iterations"],
        stats["seconds"],
        stats["it_per_s"],
        stats["images_per_s"],
    )
    return stats

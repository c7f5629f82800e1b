"""`fad train`: build the detector from the config (and genotype), train with periodic atomic
checkpoints and exact resume, then evaluate."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn
from yacs.config import CfgNode as CN

from fad import __version__
from fad.data.build import build_datasets, build_train_loader
from fad.data.transforms import hflip
from fad.engine.checkpoint import (
    find_resume_checkpoint,
    load_model_state,
    load_optimizer_state,
    remove_partial_writes,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from fad.engine.distributed import wrap_ddp
from fad.engine.evaluate import evaluate_model
from fad.engine.loop import LoopHooks, check_finite, run_loop
from fad.engine.setup import RunContext, start_run
from fad.modeling.build import build_detector
from fad.search_space.genotype import Genotype
from fad.solver import build_optimizer, build_scheduler

log = logging.getLogger("fad")


def checkpoint_meta(
    cfg: CN,
    class_names: list[str],
    genotypes: dict[str, Genotype] | None,
    kind: str,
    category_ids: list[int] | None = None,
) -> dict[str, Any]:
    """Plain data stored next to the weights: enough to rebuild the model from the file alone.

    `category_ids[k]` is the dataset's category id of contiguous label k + 1.
    """
    return {
        "kind": kind,
        "fad_version": __version__,
        "config": cfg.dump(),
        "class_names": list(class_names),
        "category_ids": [int(c) for c in category_ids] if category_ids else [],
        "genotypes": {k: str(v) for k, v in (genotypes or {}).items()},
    }


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def random_flip(images, targets, generator: torch.Generator, prob: float):
    """Flip each image (and its boxes) with probability `prob`, drawn from `generator`."""
    draws = torch.rand(len(images), generator=generator).tolist()
    pairs = [hflip(i, t) if d < prob else (i, t) for i, t, d in zip(images, targets, draws)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def make_train_step(
    model, optimizer, scheduler, device, *, clip_grad: float, flip_prob: float, seed: int
):
    """One SGD iteration on a batch; non-finite losses stop the run before the optimizer step."""
    params = [p for p in model.parameters() if p.requires_grad]

    def step(iteration: int, batch) -> dict[str, torch.Tensor]:
        images, targets = batch
        generator = torch.Generator().manual_seed(seed * 1_000_003 + iteration)
        images, targets = random_flip(images, targets, generator, flip_prob)
        images = [img.to(device, non_blocking=True) for img in images]
        targets = [
            {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in t.items()} for t in targets
        ]
        losses = model(images, targets)
        check_finite(iteration, losses, device)
        optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        max_norm = clip_grad if clip_grad > 0 else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        check_finite(iteration, {"grad_norm": norm}, device, what="gradient norm")
        optimizer.step()
        scheduler.step()
        return losses

    return step


def prepare_training_run(cfg: CN, ctx: RunContext) -> list:
    """The training sets (data report logged); temp files of a killed writer removed."""
    datasets = build_datasets(cfg.DATASETS.TRAIN, train=True, flip_prob=0.0)
    for dataset in datasets:
        log.info("data report: %s", dataset.report_text())
    if ctx.rank == 0:
        remove_partial_writes(ctx.output_dir)
    return datasets


def train(
    cfg: CN,
    *,
    genotypes: dict[str, Genotype] | None = None,
    use_tensorboard: bool = False,
    skip_test: bool = False,
    local_rank: int | None = None,
) -> dict[str, Any]:
    """Train (resuming from OUTPUT_DIR when it holds a checkpoint); returns timing and AP."""
    ctx = start_run(cfg, local_rank=local_rank)
    datasets = prepare_training_run(cfg, ctx)
    class_names = list(datasets[0].class_names)
    resume = find_resume_checkpoint(ctx.output_dir)
    model = build_detector(cfg, len(class_names), genotypes, load_weights=resume is None)
    model.to(ctx.device)
    optimizer = build_optimizer(model.named_parameters(), cfg.SOLVER)
    scheduler = build_scheduler(optimizer, cfg.SOLVER)
    start_iter = 0
    if resume is not None:
        path, ckpt = resume
        load_model_state(model, ckpt["model"], str(path))
        load_optimizer_state(optimizer, ckpt["optimizer"], str(path))
        scheduler.load_state_dict(ckpt["scheduler"])
        start_iter = int(ckpt["iteration"])
        log.info("resuming from %s at iteration %d", path, start_iter)
    max_iter = cfg.SOLVER.MAX_ITER
    category_ids = [datasets[0].label_to_category_id[k] for k in range(1, len(class_names) + 1)]
    meta = checkpoint_meta(cfg, class_names, genotypes, "train", category_ids)
    if start_iter < max_iter:
        stats = _train_iterations(
            cfg,
            ctx,
            model,
            optimizer,
            scheduler,
            datasets,
            start_iter,
            meta,
            resume[1] if resume else None,
            use_tensorboard,
        )
    else:
        stats = {"iterations": 0, "seconds": 0.0, "it_per_s": 0.0, "images_per_s": 0.0}
        log.info("already trained to iteration %d", start_iter)
    result: dict[str, Any] = {"train": stats, "output_dir": str(ctx.output_dir)}
    if not skip_test and cfg.DATASETS.TEST:
        result["eval"] = evaluate_model(cfg, unwrap(model), ctx, class_names)
    return result


def _train_iterations(
    cfg,
    ctx: RunContext,
    model,
    optimizer,
    scheduler,
    datasets,
    start_iter,
    meta,
    ckpt,
    use_tensorboard,
):
    max_iter = cfg.SOLVER.MAX_ITER
    loader = build_train_loader(
        datasets,
        images_per_batch=cfg.SOLVER.IMS_PER_BATCH // ctx.world_size,
        max_iter=max_iter,
        start_iter=start_iter,
        seed=cfg.SEED,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
        aspect_ratio_grouping=cfg.DATALOADER.ASPECT_RATIO_GROUPING,
        rank=ctx.rank,
        world_size=ctx.world_size,
        max_bad_fraction=cfg.DATALOADER.MAX_BAD_IMAGE_FRACTION,
    )
    batches = iter(loader)
    if ckpt is not None:  # after the loader drew its own seeds, so the streams line up
        set_rng_state(ckpt["rng"])
    net = wrap_ddp(model, ctx.device)
    net.train()
    step = make_train_step(
        net,
        optimizer,
        scheduler,
        ctx.device,
        clip_grad=cfg.SOLVER.CLIP_GRAD_NORM,
        flip_prob=cfg.INPUT.HORIZONTAL_FLIP_PROB_TRAIN,
        seed=cfg.SEED + ctx.rank,
    )

    def save(iteration: int, name: str | None = None) -> Path:
        payload = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "iteration": iteration,
            "rng": rng_state(),
            "meta": meta,
        }
        return save_checkpoint(ctx.output_dir, name or f"model_{iteration:07d}.pth", payload)

    writer = _tensorboard(ctx) if use_tensorboard else None
    hooks = LoopHooks(
        save=save,
        checkpoint_period=cfg.SOLVER.CHECKPOINT_PERIOD,
        writer=writer,
        lr=lambda: optimizer.param_groups[0]["lr"],
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
        path = save(max_iter, "model_final.pth")
        log.info("saved %s", path)
    log.info(
        "training: %d iterations in %.1f s (%.2f it/s, %.1f images/s)",
        stats["iterations"],
        stats["seconds"],
        stats["it_per_s"],
        stats["images_per_s"],
    )
    return stats


def _tensorboard(ctx: RunContext):
    if ctx.rank != 0:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(ctx.output_dir / "tensorboard"))

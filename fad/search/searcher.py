"""`fad search`: the architecture search loop, from config to genotype.log, resumable and measured.

Every iteration: an alpha step (Adam; first or second order, see ``fad.search.architect``) on a
batch of the alpha stream, then a weight step (the SGD schedule of training, gradients clipped at
SOLVER.SEARCH.CLIP_GRAD_NORM) on a batch of the weight stream (see ``fad.search.streams``).
Checkpoints hold the weights and alphas (both in the model's state_dict), both optimizers, the
scheduler, the iteration, the RNG states and the alpha history; a run on an OUTPUT_DIR that
holds one resumes from it, and on CPU ends bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from yacs.config import CfgNode as CN

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
from fad.engine.trained import checkpoint_meta
from fad.errors import FadError
from fad.modeling.build import apply_speed_paths, build_detector
from fad.runtime.checkpoint import (
    ResumePoint,
    find_resume_point,
    save_checkpoint,
    set_rng_state,
)
from fad.runtime.distributed import check_same_across_processes, is_main_process, wrap_ddp
from fad.search.budget import Budget, cost_model
from fad.search.convergence import settled_since, snapshot_convergence
from fad.search.history import AlphaHistory
from fad.search.methods import MethodOptions, SearchMethod, method_class
from fad.search.outputs import current_genotypes, write_search_outputs
from fad.search.report import build_report, reset_peak_memory, write_report
from fad.search.state import SearchState
from fad.search.step import LOG_PERIOD, AlphaMonitor, make_search_step, stability_window
from fad.search.streams import search_streams
from fad.search_space.towers import alphas

log = logging.getLogger("fad")
CHECKPOINT_KIND = "search"


def _check_search_config(cfg: CN) -> type[SearchMethod]:
    """The search method of the config, checked against the supernet it asks for."""
    if not cfg.MODEL.FAD.SEARCH:
        raise FadError("fad search needs MODEL.FAD.SEARCH True in the config (got False)")
    search = cfg.SOLVER.SEARCH
    method = method_class(search.METHOD, search.FIRST_ORDER)
    method.check_supernet(cfg.MODEL.FAD.PARTIAL_CHANNELS, cfg.MODEL.FAD.EDGE_NORMALIZATION)
    return method


def final_convergence(history: AlphaHistory) -> dict[str, Any]:
    """The last snapshot's convergence figures and since when the genotypes are unchanged; a
    warning when a genotype was read off near-uniform op weights."""
    figures = snapshot_convergence(history.snapshots[-1], history.towers)
    for role, f in figures.items():
        if f["near_uniform"]:
            log.warning(
                "the %s genotype was read off near-uniform op weights (entropy %.3f of %.3f "
                "nats, weakest kept op %.2fx uniform): the data did not choose it; search longer "
                "or with a larger SOLVER.SEARCH.BASE_LR_ALPHA",
                role,
                f["mean_entropy"],
                f["uniform_entropy"],
                f["min_top_over_uniform"],
            )
    return {"convergence": figures, "settled_since": settled_since(history.snapshots)}


def build_method(
    cls: type[SearchMethod], cfg: CN, state: SearchState, num_classes: int
) -> SearchMethod:
    """The run's search method over the model of `state`, from SOLVER.SEARCH.* and SEED."""
    search = cfg.SOLVER.SEARCH
    budget = None
    if search.COST_BUDGET > 0:
        costs = cost_model(cfg, num_classes)
        budget = Budget(search.COST_BUDGET, search.COST_WEIGHT, costs)
    options = MethodOptions(
        seed=cfg.SEED,
        max_iter=cfg.SOLVER.MAX_ITER,
        warmup_iters=search.WARMUP_ITERS,
        tau=tuple(search.TAU),
        one_level=search.ONE_LEVEL,
        budget=budget,
    )
    return cls(state.model, state.alpha_optimizer, state.optimizer, options, state.precision)


def _resume_point(folder: Path, required: bool, fresh: bool) -> ResumePoint:
    if required and fresh:
        raise FadError("--resume and --fresh contradict each other; give one of them")
    point = find_resume_point(folder, fresh=fresh)
    if point.checkpoint is None:
        if required:
            raise FadError(f"--resume: no loadable checkpoint in {folder}")
        return point
    kind = point.checkpoint.get("meta", {}).get("kind")
    if kind != CHECKPOINT_KIND or "alpha_optimizer" not in point.checkpoint:
        raise FadError(
            f"{point.path} is a {kind or 'non-search'} checkpoint, not a search one; "
            "pick another OUTPUT_DIR for the search"
        )
    return point


def run_search(
    cfg: CN,
    *,
    use_tensorboard: bool = False,
    resume: bool = False,
    local_rank: int | None = None,
    fresh: bool = False,
) -> dict[str, Any]:
    """Search (resuming from OUTPUT_DIR when it holds a checkpoint); returns the report.

    `resume`: a loadable checkpoint is required; `fresh`: start from iteration 0 when none of
    the checkpoints loads (see `fad.runtime.checkpoint.find_resume_point`).
    """
    wall_start = time.perf_counter()
    method_cls = _check_search_config(cfg)
    check_run(cfg, train=True, test=False)
    point = _resume_point(Path(cfg.OUTPUT_DIR), resume, fresh)
    ctx = start_run(cfg, local_rank=local_rank)
    start_from(point, ctx, fresh)
    reset_peak_memory(ctx.device)
    datasets = prepare_training_data(cfg, ctx)
    class_names = list(datasets[0].class_names)
    model = build_detector(cfg, len(class_names), None, load_weights=point.checkpoint is None)
    model.to(ctx.device)
    apply_speed_paths(model, cfg)
    current_genotypes(model)  # both towers searched, before any heavy work
    state = SearchState.build(model, cfg)
    method = build_method(method_cls, cfg, state, len(class_names))
    state.method = method
    start_iter = 0
    if point.checkpoint is not None:
        start_iter = state.load(point.checkpoint, str(point.path))
        log.info("resuming the search from %s at iteration %d", point.path, start_iter)
    else:
        state.history.record(model, 0, checkpoint=True)
    ctx.start_writing()  # every check passed: config.yaml, log.txt, set-asides
    max_iter = cfg.SOLVER.MAX_ITER
    meta = checkpoint_meta(cfg, class_names, None, CHECKPOINT_KIND)

    def save(iteration: int, name: str | None = None) -> Path:
        name = name or f"model_{iteration:07d}.pth"
        return save_checkpoint(ctx.output_dir, name, state.payload(iteration, meta))

    stats = no_iterations()
    images_per_iter = 2 * cfg.SOLVER.IMS_PER_BATCH  # a weight batch and an alpha batch
    if start_iter < max_iter:
        stats = _search_iterations(
            cfg,
            ctx,
            state,
            datasets,
            save,
            start_iter,
            point.checkpoint,
            use_tensorboard,
            images_per_iter,
        )
    else:
        log.info("already searched to iteration %d", start_iter)
    check_same_across_processes(alphas(model), "the alphas")  # lockstep on every rank
    genotypes: dict[str, Any] = {}
    if is_main_process():
        if start_iter < max_iter:
            log.info("saved %s", save(max_iter, "model_final.pth"))
        final_iter = max(start_iter, max_iter)
        genotypes = write_search_outputs(
            ctx.output_dir, model, state.history, final_iter, final=True
        )
    report = build_report(
        loop_stats=stats,
        wall_seconds=time.perf_counter() - wall_start,
        start_iter=start_iter,
        max_iter=max_iter,
        images_per_iter=images_per_iter,
        device=ctx.device,
        world_size=ctx.world_size,
        genotypes={role: str(g) for role, g in genotypes.items()},
        settings={
            "method": method.name + (" one-level" if method.options.one_level else ""),
            "first_order": method.first_order,
            "repshare": bool(cfg.MODEL.FAD.REPSHARE),
            "alpha_holdout": float(cfg.SOLVER.SEARCH.ALPHA_HOLDOUT),
            "warmup_iters": int(cfg.SOLVER.SEARCH.WARMUP_ITERS),
            "genotype_stability": state.history.stability(stability_window(max_iter)),
            **final_convergence(state.history),
            "cost": (
                method.options.budget.report(model, method.derive())
                if method.options.budget is not None
                else None
            ),
            "ims_per_batch": int(cfg.SOLVER.IMS_PER_BATCH),
        },
    )
    if is_main_process():
        write_report(ctx.output_dir, report)
    return report


def _search_iterations(
    cfg: CN,
    ctx: RunContext,
    state: SearchState,
    datasets: list,
    save: Callable[..., Path],
    start_iter: int,
    ckpt: dict[str, Any] | None,
    use_tensorboard: bool,
    images_per_iter: int,
) -> dict[str, float]:
    max_iter = cfg.SOLVER.MAX_ITER
    options = train_loader_options(cfg, ctx, start_iter)
    batches = search_streams(datasets, cfg.SOLVER.SEARCH.ALPHA_HOLDOUT, options)
    if ckpt is not None:  # after the loaders drew their own seeds, so the streams line up
        set_rng_state(ckpt["rng"])
    model = state.model
    method = state.method
    net = wrap_ddp(model, ctx.device, find_unused_parameters=method.find_unused_parameters())
    net.train()
    writer = open_tensorboard(ctx, use_tensorboard)
    monitor = AlphaMonitor(
        model,
        state.history,
        checkpoint_period=cfg.SOLVER.CHECKPOINT_PERIOD,
        max_iter=max_iter,
        writer=writer,
        method=method,
    )
    step = make_search_step(
        net,
        method,
        state.optimizer,
        state.scheduler,
        ctx.device,
        clip_grad=cfg.SOLVER.SEARCH.CLIP_GRAD_NORM,
        flip_prob=cfg.INPUT.HORIZONTAL_FLIP_PROB_TRAIN,
        seed=cfg.SEED + ctx.rank,
        warmup_iters=cfg.SOLVER.SEARCH.WARMUP_ITERS,
        after_iteration=monitor,
    )

    def write_outputs(iteration: int) -> None:
        if is_main_process():
            write_search_outputs(ctx.output_dir, model, state.history, iteration)

    hooks = LoopHooks(
        save=save,
        checkpoint_period=cfg.SOLVER.CHECKPOINT_PERIOD,
        log_period=LOG_PERIOD,
        writer=writer,
        lr=lambda: state.optimizer.param_groups[0]["lr"],
        images_per_iter=images_per_iter,
        on_checkpoint=[write_outputs],
    )
    try:
        return run_loop(
            step, batches, start_iter=start_iter, max_iter=max_iter, hooks=hooks, device=ctx.device
        )
    finally:
        if writer is not None:
            writer.close()

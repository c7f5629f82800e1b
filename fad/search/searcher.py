"""`fad search`: the architecture search, from config to genotype.log, resumable and measured; the
search's hooks (`SearchJob`) of the run skeleton that training shares (``fad.engine.trainer``).

Every iteration: the search method's alpha step (``fad.search.methods``) on a batch of the alpha
stream, then a weight step (the SGD schedule of training, gradients clipped at
SOLVER.SEARCH.CLIP_GRAD_NORM) on a batch of the weight stream (see ``fad.search.streams``).
Checkpoints hold the weights and alphas (both in the model's state_dict), both optimizers, the
scheduler, the iteration, the RNG states, the alpha history and the method's state
(``fad.runtime.checkpoint.RunCheckpoint``); a run on an OUTPUT_DIR that
holds one resumes from it, and on CPU ends bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from torch import nn
from yacs.config import CfgNode as CN

from fad.data.build import TrainLoaderOptions
from fad.engine.loop import Step
from fad.engine.trainer import Run, RunJob, run_job
from fad.errors import FadError
from fad.runtime.checkpoint import SEARCH
from fad.runtime.distributed import check_same_across_processes, is_main_process
from fad.search.alpha_monitor import LOG_PERIOD, AlphaMonitor, stability_window
from fad.search.budget import Budget, cost_model
from fad.search.convergence import settled_since, snapshot_convergence
from fad.search.history import AlphaHistory
from fad.search.methods import MethodOptions, SearchMethod, method_class
from fad.search.outputs import current_genotypes, write_search_outputs
from fad.search.report import build_report, reset_peak_memory, write_report
from fad.search.search_state import SearchState
from fad.search.search_step import make_search_step
from fad.search.sharpen import EntropyPressure
from fad.search.streams import search_streams
from fad.search_space.towers import alphas

log = logging.getLogger("fad")


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
        entropy=EntropyPressure(search.ENTROPY_WEIGHT, search.WARMUP_ITERS, cfg.SOLVER.MAX_ITER - 1)
        if search.ENTROPY_WEIGHT > 0
        else None,
    )
    return cls(state.model, state.alpha_optimizer, state.optimizer, options, state.precision)


class SearchJob(RunJob):
    """The search: an alpha step then the weight step per iteration, on two streams; the alpha
    history, genotypes and pictures at every checkpoint; the report at the end."""

    kind = SEARCH
    done = "searched"
    log_period = LOG_PERIOD
    method_cls: type[SearchMethod]  # SOLVER.SEARCH.METHOD's class, set by `check`

    def check(self, cfg: CN) -> None:
        self.method_cls = _check_search_config(cfg)

    def build_state(self, run: Run) -> SearchState:
        reset_peak_memory(run.ctx.device)  # the search report's peak, from here on
        current_genotypes(run.model)  # both towers searched, before any heavy work
        state = SearchState.build(run.model, run.cfg)
        state.method = build_method(self.method_cls, run.cfg, state, len(run.class_names))
        state.history.record(run.model, 0, checkpoint=True)  # a resume replaces the history
        return state

    def images_per_iter(self, cfg: CN) -> int:
        return 2 * cfg.SOLVER.IMS_PER_BATCH  # a weight batch and an alpha batch

    def batches(self, run: Run, options: TrainLoaderOptions) -> Iterator:
        return search_streams(run.datasets, run.cfg.SOLVER.SEARCH.ALPHA_HOLDOUT, options)

    def find_unused_parameters(self, run: Run) -> bool:
        return run.state.method.find_unused_parameters()

    def step(self, run: Run, net: nn.Module) -> Step:
        cfg, state = run.cfg, run.state
        monitor = AlphaMonitor(
            run.model,
            state.history,
            checkpoint_period=cfg.SOLVER.CHECKPOINT_PERIOD,
            max_iter=run.max_iter,
            writer=run.writer,
            method=state.method,
        )
        return make_search_step(
            net,
            state.method,
            state.optimizer,
            state.scheduler,
            run.ctx.device,
            clip_grad=cfg.SOLVER.SEARCH.CLIP_GRAD_NORM,
            flip_prob=cfg.INPUT.HORIZONTAL_FLIP_PROB_TRAIN,
            seed=cfg.SEED + run.ctx.rank,
            warmup_iters=cfg.SOLVER.SEARCH.WARMUP_ITERS,
            after_iteration=monitor,
        )

    def on_checkpoint(self, run: Run, iteration: int) -> None:
        if is_main_process():
            write_search_outputs(run.ctx.output_dir, run.model, run.state.history, iteration)

    def finished(self, run: Run) -> None:
        check_same_across_processes(alphas(run.model), "the alphas")  # lockstep on every rank

    def report(self, run: Run, stats: dict[str, float]) -> dict[str, Any]:
        genotypes: dict[str, Any] = {}
        if is_main_process():
            final_iter = max(run.start_iter, run.max_iter)
            genotypes = write_search_outputs(
                run.ctx.output_dir, run.model, run.state.history, final_iter, final=True
            )
        report = build_report(
            loop_stats=stats,
            wall_seconds=time.perf_counter() - run.started,
            start_iter=run.start_iter,
            max_iter=run.max_iter,
            images_per_iter=self.images_per_iter(run.cfg),
            device=run.ctx.device,
            world_size=run.ctx.world_size,
            genotypes={role: str(g) for role, g in genotypes.items()},
            settings=search_settings(run),
        )
        if is_main_process():
            write_report(run.ctx.output_dir, report)
        return report


def search_settings(run: Run) -> dict[str, Any]:
    """What the report says about how the search ran and how it ended."""
    cfg, method, history = run.cfg, run.state.method, run.state.history
    budget = method.options.budget
    return {
        "method": method.name
        + (" one-level" if method.options.one_level else "")
        + (f" entropy {method.options.entropy.weight:g}" if method.options.entropy else ""),
        "first_order": method.first_order,
        "repshare": bool(cfg.MODEL.FAD.REPSHARE),
        "alpha_holdout": float(cfg.SOLVER.SEARCH.ALPHA_HOLDOUT),
        "warmup_iters": int(cfg.SOLVER.SEARCH.WARMUP_ITERS),
        "genotype_stability": history.stability(stability_window(run.max_iter)),
        **final_convergence(history),
        "cost": budget.report(run.model, method.derive()) if budget is not None else None,
        "ims_per_batch": int(cfg.SOLVER.IMS_PER_BATCH),
    }


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
    options = {"use_tensorboard": use_tensorboard, "local_rank": local_rank, "fresh": fresh}
    return run_job(cfg, SearchJob(), resume=resume, **options)

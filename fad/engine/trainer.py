"""The run skeleton that `fad train` and `fad search` share (detectron2's trainer with hooks).

`run_job(cfg, job)` runs one fixed sequence; a `RunJob` fills in what differs between training
and the search through its hooks (`job.*` below):

    job.check(cfg), check_run, the resume point  nothing written yet; a checkpoint of another
                                                 kind is refused
    start_run, start_from                        OUTPUT_DIR taken, the log kept in memory
    the training sets, the detector              pretrained weights unless resuming; speed paths
    job.build_state(run), state.load(checkpoint) the run state (+ the search method), resumed
    ctx.start_writing()                          every check passed: config.yaml, log.txt
    job.batches(run, options), RNG states, DDP,  the loop's parts; `run_loop` then runs the
      TensorBoard, job.step(run, net)              iterations with periodic checkpoints
                                                   (+ job.on_checkpoint) and progress lines
    job.finished(run), model_final.pth           after the loop (main process: the final save)
    job.report(run, stats)                       the result

Every checkpoint is the run state's `RunCheckpoint` with the same meta (kind, config, classes,
category ids, genotypes, version; `fad.runtime.checkpoint`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from torch import nn
from yacs.config import CfgNode as CN

from fad.data.build import TrainLoaderOptions, build_train_loader
from fad.data.detection import DetectionDataset
from fad.engine.loop import LoopHooks, Step, no_iterations, run_loop
from fad.engine.preflight import check_run
from fad.engine.run import (
    RunContext,
    open_tensorboard,
    prepare_training_data,
    start_from,
    start_run,
    train_loader_options,
)
from fad.engine.train_state import TrainState
from fad.engine.trained_model import checkpoint_meta
from fad.errors import FadError
from fad.modeling.build import apply_speed_paths, build_detector
from fad.runtime.checkpoint import (
    CheckpointMeta,
    ResumePoint,
    RunCheckpoint,
    find_resume_point,
    save_checkpoint,
    set_rng_state,
)
from fad.runtime.distributed import is_main_process, wrap_ddp
from fad.search_space.genotype import Genotype

log = logging.getLogger("fad")


@dataclass
class Run:
    """What a started run knows, for its job's hooks: `state` once built, `checkpoint` the one
    it resumes from (None: iteration 0), `writer` the TensorBoard writer during the loop."""

    cfg: CN
    ctx: RunContext
    datasets: list[DetectionDataset]
    model: nn.Module  # unwrapped (the loop's DDP wrapper is `job.step`'s `net`)
    started: float  # time.perf_counter() before the checks
    checkpoint: RunCheckpoint | None = None
    state: TrainState | None = None
    start_iter: int = 0
    meta: CheckpointMeta | None = field(default=None, repr=False)
    writer: Any = None

    @property
    def class_names(self) -> list[str]:
        return list(self.datasets[0].class_names)

    @property
    def category_ids(self) -> list[int]:
        """The dataset's category id of each contiguous label 1..K."""
        ids = self.datasets[0].label_to_category_id
        return [ids[k] for k in range(1, len(self.class_names) + 1)]

    @property
    def max_iter(self) -> int:
        return self.cfg.SOLVER.MAX_ITER

    def save(self, iteration: int, name: str | None = None) -> Path:
        """Checkpoint the state after `iteration` completed iterations (atomic)."""
        name = name or f"model_{iteration:07d}.pth"
        payload = self.state.checkpoint(iteration, self.meta).to_payload()
        return save_checkpoint(self.ctx.output_dir, name, payload)


class RunJob:
    """What differs between two runs of the skeleton: defaults are training's where a hook has
    one. `kind` is the checkpoint kind it writes and resumes (`fad.runtime.checkpoint`)."""

    kind: ClassVar[str]
    done: ClassVar[str]  # "already <done> to iteration N"
    log_period: ClassVar[int] = 20  # progress line and TensorBoard every this many iterations
    evaluates: bool = False  # DATASETS.TEST checked in the preflight
    genotypes: dict[str, Genotype] | None = None  # the towers' genotypes (None: search/standard)

    def check(self, cfg: CN) -> None:
        """The job's own config checks, before the preflight (nothing written yet)."""

    def build_state(self, run: Run) -> TrainState:
        """The run state over `run.model` (on its device, speed paths applied)."""
        raise NotImplementedError

    def images_per_iter(self, cfg: CN) -> int:
        return cfg.SOLVER.IMS_PER_BATCH

    def batches(self, run: Run, options: TrainLoaderOptions) -> Iterator:
        """The loop's batches from `options` (this process's share, from `run.start_iter`)."""
        return iter(build_train_loader(run.datasets, options))

    def find_unused_parameters(self, run: Run) -> bool:
        """Whether DDP must expect parameters without gradients in a step."""
        return False

    def step(self, run: Run, net: nn.Module) -> Step:
        """One iteration on one of `batches`' items; `net` is the model under DDP (if any)."""
        raise NotImplementedError

    def on_checkpoint(self, run: Run, iteration: int) -> None:
        """After each periodic checkpoint (every process)."""

    def finished(self, run: Run) -> None:
        """After the loop (or none), before the final checkpoint (every process)."""

    def report(self, run: Run, stats: dict[str, float]) -> dict[str, Any]:
        """The run's result, from the loop statistics (`no_iterations()` when none ran)."""
        raise NotImplementedError


def resume_point(folder: Path, *, required: bool, fresh: bool) -> ResumePoint:
    """`find_resume_point`; `required` (--resume): a loadable checkpoint must be there."""
    if required and fresh:
        raise FadError("--resume and --fresh contradict each other; give one of them")
    point = find_resume_point(folder, fresh=fresh)
    if required and point.checkpoint is None:
        raise FadError(f"--resume: no loadable checkpoint in {folder}")
    return point


def run_job(
    cfg: CN,
    job: RunJob,
    *,
    use_tensorboard: bool = False,
    resume: bool = False,
    local_rank: int | None = None,
    fresh: bool = False,
) -> dict[str, Any]:
    """Run `job` (resuming from OUTPUT_DIR when it holds a checkpoint); returns its report.

    Before anything is written: the job's checks, the preflight, and the checkpoints read
    (`fresh`: start from iteration 0 when none of them loads; `resume`: one must load; see
    `fad.runtime.checkpoint.find_resume_point`).
    """
    run = _start(cfg, job, resume=resume, local_rank=local_rank, fresh=fresh)
    if run.start_iter < run.max_iter:
        stats = _iterate(run, job, use_tensorboard)
    else:
        stats = no_iterations()
        log.info("already %s to iteration %d", job.done, run.start_iter)
    job.finished(run)
    if is_main_process() and run.start_iter < run.max_iter:
        log.info("saved %s", run.save(run.max_iter, "model_final.pth"))
    return job.report(run, stats)


def _start(cfg: CN, job: RunJob, *, resume: bool, local_rank: int | None, fresh: bool) -> Run:
    """Everything up to the first iteration: checks, start, data, model, state, resume."""
    started = time.perf_counter()
    job.check(cfg)
    check_run(cfg, train=True, test=job.evaluates)
    point = resume_point(Path(cfg.OUTPUT_DIR), required=resume, fresh=fresh)
    checkpoint = None
    if point.checkpoint is not None:
        checkpoint = RunCheckpoint.from_payload(point.checkpoint, str(point.path), job.kind)
    ctx = start_run(cfg, local_rank=local_rank)
    start_from(point, ctx, fresh)
    datasets = prepare_training_data(cfg, ctx)
    classes = len(datasets[0].class_names)
    model = build_detector(cfg, classes, job.genotypes, load_weights=checkpoint is None)
    model.to(ctx.device)
    apply_speed_paths(model, cfg)
    run = Run(cfg, ctx, datasets, model, started, checkpoint)
    run.state = job.build_state(run)
    if checkpoint is not None:
        run.start_iter = run.state.load(checkpoint, str(point.path))
        log.info("resuming from %s at iteration %d", point.path, run.start_iter)
    ctx.start_writing()  # every check passed: config.yaml, log.txt, set-asides
    run.meta = checkpoint_meta(cfg, run.class_names, job.genotypes, job.kind, run.category_ids)
    return run


def _iterate(run: Run, job: RunJob, use_tensorboard: bool) -> dict[str, float]:
    """The loop from `run.start_iter` to MAX_ITER; returns its statistics."""
    cfg, ctx = run.cfg, run.ctx
    batches = job.batches(run, train_loader_options(cfg, ctx, run.start_iter))
    if run.checkpoint is not None:  # after the loaders drew their own seeds: the streams line up
        set_rng_state(run.checkpoint.rng)
    net = wrap_ddp(run.model, ctx.device, find_unused_parameters=job.find_unused_parameters(run))
    net.train()
    run.writer = open_tensorboard(ctx, use_tensorboard)
    try:
        hooks = LoopHooks(
            save=run.save,
            checkpoint_period=cfg.SOLVER.CHECKPOINT_PERIOD,
            log_period=job.log_period,
            writer=run.writer,
            lr=lambda: run.state.optimizer.param_groups[0]["lr"],
            images_per_iter=job.images_per_iter(cfg),
            on_checkpoint=[lambda iteration: job.on_checkpoint(run, iteration)],
        )
        step = job.step(run, net)
        return run_loop(
            step,
            batches,
            start_iter=run.start_iter,
            max_iter=run.max_iter,
            hooks=hooks,
            device=ctx.device,
        )
    finally:
        if run.writer is not None:
            run.writer.close()

"""`fad train`: build the detector from the config (and genotype), train with periodic atomic
checkpoints and exact resume, then evaluate; the training's hooks of the run skeleton
(`fad.engine.trainer`)."""

from __future__ import annotations

import logging
from typing import Any

from yacs.config import CfgNode as CN

from fad.engine.evaluate import evaluate_model
from fad.engine.loop import Step
from fad.engine.train_state import TrainState
from fad.engine.trainer import Run, RunJob, run_job
from fad.engine.weight_step import DetectionBatch, WeightStep, prepare_batch
from fad.runtime.checkpoint import TRAIN
from fad.search_space.genotype import Genotype

log = logging.getLogger("fad")


class TrainingJob(RunJob):
    """Training: the weight step on each batch; the report is the loop's timing and the AP."""

    kind = TRAIN
    done = "trained"

    def __init__(self, genotypes: dict[str, Genotype] | None, evaluates: bool) -> None:
        self.genotypes = genotypes
        self.evaluates = evaluates

    def build_state(self, run: Run) -> TrainState:
        return TrainState.build(run.model, run.cfg)

    def step(self, run: Run, net) -> Step:
        cfg, ctx, state = run.cfg, run.ctx, run.state
        weight_step = WeightStep(
            net,
            state.optimizer,
            state.scheduler,
            ctx.device,
            clip_grad=cfg.SOLVER.CLIP_GRAD_NORM,
            precision=state.precision,
        )
        seed, flip_prob = cfg.SEED + ctx.rank, cfg.INPUT.HORIZONTAL_FLIP_PROB_TRAIN

        def step(iteration: int, batch: DetectionBatch) -> dict:
            batch = prepare_batch(
                batch, seed=seed, iteration=iteration, flip_prob=flip_prob, device=ctx.device
            )
            return weight_step(iteration, batch)

        return step

    def report(self, run: Run, stats: dict[str, float]) -> dict[str, Any]:
        if stats["iterations"]:
            log.info(
                "training: %d iterations in %.1f s (%.2f it/s, %.1f images/s)",
                stats["iterations"],
                stats["seconds"],
                stats["it_per_s"],
                stats["images_per_s"],
            )
        result: dict[str, Any] = {"train": stats, "output_dir": str(run.ctx.output_dir)}
        if self.evaluates and run.cfg.DATASETS.TEST:
            result["eval"] = evaluate_model(run.cfg, run.model, run.ctx, run.class_names)
        return result


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
    job = TrainingJob(genotypes, evaluates=not skip_test)
    return run_job(cfg, job, use_tensorboard=use_tensorboard, local_rank=local_rank, fresh=fresh)

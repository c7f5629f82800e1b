"""The run skeleton: a job's hooks run in one fixed order around the shared sequence; nothing is
written before the checks; every checkpoint carries the same meta, category ids included."""

from __future__ import annotations

import pytest
import torch

from fad.config import load_config
from fad.engine.train_state import TrainState
from fad.engine.trainer import RunJob, run_job
from fad.errors import FadError
from fad.runtime.checkpoint import (
    SEARCH,
    TRAIN,
    CheckpointMeta,
    RunCheckpoint,
    SearchCheckpoint,
    load_checkpoint,
    save_checkpoint,
)
from fad.runtime.lock import LOCK_NAME
from fad.runtime.version import __version__

LOOP = ["SOLVER.MAX_ITER", "3", "SOLVER.CHECKPOINT_PERIOD", "2"]


class Recorder(RunJob):
    """A job whose step does nothing but note the iteration; every hook notes its call."""

    kind = TRAIN
    done = "recorded"

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.calls: list[str] = []

    def check(self, cfg):
        self.calls.append("check")
        if self.refuse:
            raise FadError("refused by the job")

    def build_state(self, run):
        written = sorted(p.name for p in run.ctx.output_dir.iterdir() if p.name != LOCK_NAME)
        self.calls.append(f"build_state written={written}")
        return TrainState.build(run.model, run.cfg)

    def batches(self, run, options):
        self.calls.append(f"batches from {options.start_iter}")
        return super().batches(run, options)

    def step(self, run, net):
        self.calls.append("step")

        def step(iteration, batch):
            self.calls.append(f"iteration {iteration}")
            return {"loss": torch.zeros(())}

        return step

    def on_checkpoint(self, run, iteration):
        self.calls.append(f"checkpoint {iteration}")

    def finished(self, run):
        self.calls.append("finished")

    def report(self, run, stats):
        self.calls.append(f"report {stats['iterations']}")
        return {"start": run.start_iter}


def test_the_hooks_run_in_one_order_and_a_rerun_resumes(shapes_config, tiny_opts, tmp_path):
    cfg = load_config(shapes_config, [*tiny_opts, *LOOP])
    job = Recorder()
    assert run_job(cfg, job) == {"start": 0}
    assert job.calls == [
        "check",
        "build_state written=[]",  # the folder is taken (locked), nothing is in it yet
        "batches from 0",
        "step",
        "iteration 0",
        "iteration 1",
        "checkpoint 2",
        "iteration 2",
        "finished",
        "report 3",
    ]
    again = Recorder()
    assert run_job(cfg, again) == {"start": 3}
    assert again.calls[2:] == ["finished", "report 0"]


def test_every_checkpoint_holds_the_runs_meta(shapes_config, tiny_opts, tmp_path):
    cfg = load_config(shapes_config, [*tiny_opts, *LOOP])
    run_job(cfg, Recorder())
    out = tmp_path / "out"
    periodic = load_checkpoint(out / "model_0000002.pth")["meta"]
    final = load_checkpoint(out / "model_final.pth")["meta"]
    assert periodic == final
    assert final["kind"] == TRAIN and final["fad_version"] == __version__
    assert final["class_names"] == ["circle", "square", "triangle", "star", "cross"]
    assert len(final["category_ids"]) == 5 and final["config"] == cfg.dump()


def test_nothing_is_written_when_the_jobs_check_fails(shapes_config, tiny_opts, tmp_path):
    cfg = load_config(shapes_config, [*tiny_opts, *LOOP])
    job = Recorder(refuse=True)
    with pytest.raises(FadError, match="refused by the job"):
        run_job(cfg, job)
    assert job.calls == ["check"]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_checkpoint_of_another_kind_stops_the_run_before_it_writes(
    shapes_config, tiny_opts, tmp_path
):
    cfg = load_config(shapes_config, [*tiny_opts, *LOOP])
    out = tmp_path / "out"
    search = RunCheckpoint(
        model={"w": torch.ones(1)},
        optimizer={},
        scheduler={},
        iteration=1,
        meta=CheckpointMeta(kind=SEARCH, config=""),
        search=SearchCheckpoint({}, {}),
    )
    save_checkpoint(out, "model_0000001.pth", search.to_payload())
    before = sorted(p.name for p in out.iterdir())
    job = Recorder()
    with pytest.raises(FadError, match="model_0000001.pth is a search checkpoint, not a train"):
        run_job(cfg, job)
    assert job.calls == ["check"] and sorted(p.name for p in out.iterdir()) == before

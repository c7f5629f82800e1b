"""The iteration loop shared by training and search: a `step` callable plus the hooks every long
run needs (progress line, TensorBoard, periodic atomic checkpoints, Ctrl-C/SIGTERM handling)."""

from __future__ import annotations

import contextlib
import datetime
import logging
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fad.errors import FadError
from fad.runtime.distributed import is_main_process, reduce_loss_dict

log = logging.getLogger("fad")

Step = Callable[[int, object], dict[str, torch.Tensor]]


@dataclass
class LoopHooks:
    """What the loop does around each step."""

    save: Callable[[int], Path]  # save a checkpoint after `iteration` completed iterations
    checkpoint_period: int
    log_period: int = 20
    writer: object | None = None  # torch.utils.tensorboard.SummaryWriter
    lr: Callable[[], float] = lambda: 0.0
    images_per_iter: int = 1
    on_checkpoint: list[Callable[[int], None]] = field(default_factory=list)


class Interrupts:
    """SIGINT/SIGTERM -> KeyboardInterrupt, held back while an iteration is in progress.

    A signal that arrives inside `iteration()` is raised when the iteration (optimizer and
    scheduler step) is complete, so the checkpoint written on interrupt never holds half an
    iteration. A second signal during the same iteration is raised at once (`torn` is then True).
    Outside `iteration()` (e.g. waiting for data) a signal is raised at once.
    """

    def __init__(self) -> None:
        self.in_iteration = False
        self.pending = False
        self.torn = False

    def handle(self, signum, frame) -> None:
        if self.in_iteration and not self.pending:
            self.pending = True
            return
        self.torn = self.in_iteration
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def iteration(self):
        self.in_iteration = True
        try:
            yield
        finally:
            self.in_iteration = False
        if self.pending:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self):
        """Install the handler for SIGINT and SIGTERM (main thread only; a no-op elsewhere)."""
        try:
            previous = {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}
        except ValueError:  # not the main thread
            yield
            return
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _format_eta(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(max(0, seconds))))


def no_iterations() -> dict[str, float]:
    """The loop statistics of a run that had nothing left to do."""
    return {"iterations": 0, "seconds": 0.0, "it_per_s": 0.0, "images_per_s": 0.0}


def run_loop(
    step: Step,
    batches: Iterator,
    *,
    start_iter: int,
    max_iter: int,
    hooks: LoopHooks,
    device: torch.device,
) -> dict[str, float]:
    """Run iterations start_iter..max_iter-1; return timing statistics.

    On Ctrl-C or SIGTERM, the completed iterations are checkpointed and a FadError with a resume
    hint is raised (non-zero exit).
    """
    completed = start_iter
    t0 = time.perf_counter()
    window_t, window_n = t0, 0
    interrupts = Interrupts()
    with interrupts.installed():
        try:
            for iteration in range(start_iter, max_iter):
                batch = next(batches)
                with interrupts.iteration():
                    losses = step(iteration, batch)
                    completed = done = iteration + 1
                window_n += 1
                if done % hooks.log_period == 0 or done == max_iter or done == start_iter + 1:
                    values = reduce_loss_dict(losses)
                    now = time.perf_counter()
                    its = window_n / max(now - window_t, 1e-9)
                    window_t, window_n = now, 0
                    total = sum(values.values())
                    terms = "  ".join(f"{k} {v:.4f}" for k, v in values.items())
                    log.info(
                        "iter %d/%d  loss %.4f  %s  lr %.6f  %.2f it/s  eta %s",
                        done,
                        max_iter,
                        total,
                        terms,
                        hooks.lr(),
                        its,
                        _format_eta((max_iter - done) / max(its, 1e-9)),
                    )
                    if hooks.writer is not None:
                        hooks.writer.add_scalar("loss/total", total, done)
                        for k, v in values.items():
                            hooks.writer.add_scalar(f"loss/{k}", v, done)
                        hooks.writer.add_scalar("lr", hooks.lr(), done)
                        hooks.writer.add_scalar("speed/it_per_s", its, done)
                if done % hooks.checkpoint_period == 0 and done != max_iter:
                    if is_main_process():
                        hooks.save(done)
                    for callback in hooks.on_checkpoint:
                        callback(done)
        except KeyboardInterrupt:
            if interrupts.torn:  # weights may hold half an iteration: keep the last checkpoint
                raise FadError(
                    f"interrupted twice during iteration {completed + 1}, no checkpoint written; "
                    "run the same command again to resume from the last checkpoint"
                ) from None
            save = is_main_process() and completed > start_iter
            where = hooks.save(completed) if save else None
            hint = f"checkpoint {where}; " if where else ""
            raise FadError(
                f"interrupted at iteration {completed}; {hint}run the same command again to resume"
            ) from None
    elapsed = time.perf_counter() - t0
    n = max_iter - start_iter
    return {
        "iterations": n,
        "seconds": elapsed,
        "it_per_s": n / elapsed if elapsed > 0 else 0.0,
        "images_per_s": n * hooks.images_per_iter / elapsed if elapsed > 0 else 0.0,
    }

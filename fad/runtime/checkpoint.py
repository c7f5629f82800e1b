"""The checkpoint file format, and its one reader and writer.

A checkpoint is a dict of tensors and plain data: `model` (the state dict), `optimizer`,
`scheduler`, `iteration`, `rng` (Python, NumPy and torch RNG states, for exact resume), `meta`
(see `CheckpointMeta`) and, for searches, `alpha_optimizer` and `alpha_history`. Nothing in it is
executed: files are read with `weights_only=True`. Writes are atomic, and the `last_checkpoint`
pointer is updated only after the file is complete, so a crash never leaves a half checkpoint.
What a weights file means as a detector (config, classes, genotypes) is `fad.engine.trained`.
"""

from __future__ import annotations

import io
import logging
import math
import os
import pickle
import random
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fad.runtime.atomic import (
    atomic_write_bytes,
    atomic_write_text,
    fsync_dir,
    remove_stale_temporaries,
)
from fad.runtime.errors import FadError
from fad.runtime.limits import check_regular_file

log = logging.getLogger("fad")
POINTER = "last_checkpoint"
RESUME_KEYS = ("model", "optimizer", "scheduler", "iteration", "rng")  # what a resume reads
_ITER_RE = re.compile(r"model_(\d+)\.pth$")


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) RNG states as tensors / plain data."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    np_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def non_finite_entry(data: Any, prefix: str = "") -> str | None:
    """The dotted key of the first tensor or float in `data` (nested dicts, lists, tuples) that
    holds a NaN or an Inf; None when every number is finite."""
    if torch.is_tensor(data):
        floating = data.is_floating_point() or data.is_complex()
        return (prefix or "<tensor>") if floating and not torch.isfinite(data).all() else None
    if isinstance(data, float):
        return None if math.isfinite(data) else prefix or "<float>"
    if isinstance(data, dict):
        items = data.items()
    elif isinstance(data, (list, tuple)):
        items = enumerate(data)
    else:
        return None
    for key, value in items:
        found = non_finite_entry(value, f"{prefix}.{key}" if prefix else str(key))
        if found is not None:
            return found
    return None


def save_checkpoint(folder: Path, name: str, payload: dict[str, Any]) -> Path:
    """Write `folder/name` atomically, then point `last_checkpoint` at it.

    A payload holding a non-finite tensor is refused (FadError) before anything is written: a
    checkpoint is always one a run can go on from.
    """
    folder = Path(folder)
    path = folder / name
    bad = non_finite_entry(payload)
    if bad is not None:
        raise FadError(
            f"not saving {path}: {bad} holds non-finite values; the last checkpoint is intact"
        )
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getbuffer())
    atomic_write_text(folder / POINTER, name + "\n")
    return path


def remove_partial_writes(folder: Path) -> int:
    """Delete the temporary files of fad's own atomic writes in `folder` whose writer was killed
    (`.NAME.fad-PID-XXXXXXXX.tmp`, PID gone; see `fad.runtime.atomic`); any other file, a
    user's `*.tmp` included, is left alone. Call at the start of a run, before anything saves;
    returns how many were removed."""
    removed = remove_stale_temporaries(Path(folder))
    if removed:
        log.info(
            "removed %d partial file(s) left by an interrupted run in %s", len(removed), folder
        )
    return len(removed)


@dataclass(frozen=True)
class CheckpointMeta:
    """Plain data stored next to the weights: enough to rebuild the model from the file alone.

    `category_ids[k]` is the dataset's category id of contiguous label k + 1; `genotypes` maps a
    tower ("box", "cls") to its genotype's text; `config` is the run's YAML.
    """

    kind: str
    config: str
    class_names: tuple[str, ...] = ()
    category_ids: tuple[int, ...] = ()
    genotypes: dict[str, str] = field(default_factory=dict)
    fad_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "fad_version": self.fad_version,
            "config": self.config,
            "class_names": list(self.class_names),
            "category_ids": [int(c) for c in self.category_ids],
            "genotypes": dict(self.genotypes),
        }

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any], source: str = "checkpoint") -> CheckpointMeta:
        """The meta of a loaded checkpoint; a field of the wrong type, repeated class names or
        category ids, or as many of neither, is a one-line FadError naming `source` and it."""
        meta = ckpt.get("meta") or {}
        if not isinstance(meta, dict):
            raise FadError(f"{source}: its stored meta is not a dict")

        def fail(key: str, problem: str) -> None:
            raise FadError(f"{source}: stored meta field {key!r} {problem}")

        for key in ("kind", "config", "fad_version"):
            if not isinstance(meta.get(key, ""), str):
                fail(key, "is not text")
        names = meta.get("class_names") or []
        ids = meta.get("category_ids") or []
        genotypes = meta.get("genotypes") or {}
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and n for n in names):
            fail("class_names", "must be a list of non-empty names")
        if len(set(names)) != len(names):
            fail("class_names", "repeats a name: classes would be merged")
        if not isinstance(ids, (list, tuple)) or not all(_plain_int(c) for c in ids):
            fail("category_ids", "must be a list of integers")
        if len(set(ids)) != len(ids):
            fail("category_ids", "repeats an id: classes would be merged")
        if ids and len(ids) != len(names):
            fail("category_ids", f"has {len(ids)} ids for {len(names)} class_names")
        if not isinstance(genotypes, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in genotypes.items()
        ):
            fail("genotypes", "must map tower names to genotype text")
        return cls(
            kind=meta.get("kind", ""),
            config=meta.get("config", ""),
            class_names=tuple(names),
            category_ids=tuple(int(c) for c in ids),
            genotypes=dict(genotypes),
            fad_version=meta.get("fad_version", ""),
        )


def _plain_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63


class UnreadableFileError(FadError):
    """A file that cannot be loaded safely; `reason` says why, without the path."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


REFUSED = "holds objects other than tensors and plain data; refused for safety"


def _load_problem(exc: Exception) -> str:
    """Why torch.load failed, in our words: never PyTorch's advice to disable weights_only."""
    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError) and "global" in text.lower():
        return REFUSED
    if isinstance(exc, pickle.UnpicklingError) or "weights_only" in text:
        return "not a tensor file fad can read (corrupt, or a plain pickle)"
    first = text.strip().splitlines()[0].split(". ")[0] if text.strip() else ""
    return first or type(exc).__name__


def read_tensor_file(path: Path, what: str = "checkpoint") -> Any:
    """`torch.load(path, weights_only=True)` on the CPU; any failure is a one-line
    `UnreadableFileError` (a file holding code, e.g. a pickled object, is refused, never run)."""
    if not os.path.lexists(path):
        raise UnreadableFileError(f"{what} not found: {path}", "not found")
    try:
        check_regular_file(path, what)  # a named pipe would block torch.load forever
    except FadError as exc:
        raise UnreadableFileError(str(exc), str(exc).rsplit(" is ", 1)[-1]) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. the pickle-protocol notes of refused files
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UnreadableFileError(f"{what} not found: {path}", "not found") from None
    except Exception as exc:  # noqa: BLE001 - truncated, corrupt or unsafe files alike
        reason = _load_problem(exc)
        if reason == REFUSED:
            message = f"{what} {path} {REFUSED} (fad never runs code from a weights file)"
            raise UnreadableFileError(message, REFUSED) from None
        raise UnreadableFileError(f"cannot load {what} {path}: {reason}", reason) from None


def is_checkpoint(data: Any) -> bool:
    """Whether loaded file contents are a fad checkpoint (not a bare state dict)."""
    return isinstance(data, dict) and isinstance(data.get("model"), dict)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint with `weights_only=True`; an unreadable file is an UnreadableFileError."""
    data = read_tensor_file(path)
    if not is_checkpoint(data):
        reason = "not a fad checkpoint (no 'model' entry)"
        raise UnreadableFileError(f"{path} is {reason}", reason)
    return data


def _pointed_name(folder: Path) -> str | None:
    """The file name `last_checkpoint` points to; None when there is no readable pointer."""
    try:
        name = (folder / POINTER).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return Path(name).name if name else None


def candidate_checkpoints(folder: Path) -> list[Path]:
    """Checkpoints in `folder`, newest first: the pointed-to one, then by iteration, final last."""
    folder = Path(folder)
    found: list[Path] = []
    name = _pointed_name(folder)
    if name and (folder / name).is_file():
        found.append(folder / name)
    numbered = sorted(
        (p for p in folder.glob("model_*.pth") if _ITER_RE.search(p.name)),
        key=lambda p: int(_ITER_RE.search(p.name).group(1)),
        reverse=True,
    )
    final = folder / "model_final.pth"
    for p in ([final] if final.is_file() else []) + numbered:
        if p not in found:
            found.append(p)
    return found


def _loaded_candidates(folder: Path) -> Iterator[tuple[Path, dict[str, Any] | None, str]]:
    """(path, checkpoint, "") for each candidate newest first, or (path, None, why) when it
    cannot be loaded."""
    for path in candidate_checkpoints(folder):
        try:
            yield path, load_checkpoint(path), ""
        except UnreadableFileError as exc:
            yield path, None, exc.reason


def find_resume_checkpoint(folder: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint in `folder` that loads; unreadable ones are skipped with a warning
    (read-only: runs resume through `find_resume_point`, which also keeps them from harm)."""
    for path, ckpt, why in _loaded_candidates(folder):
        if ckpt is not None:
            return path, ckpt
        log.warning("skipping unreadable checkpoint %s: %s", path, why)
    return None


@dataclass
class ResumePoint:
    """Where a run starts: the newest checkpoint that loads (None: iteration 0), and the files
    that could not be read (newer checkpoints, a garbled pointer), to be moved aside before the
    run writes anything, so that it never overwrites them."""

    path: Path | None
    checkpoint: dict[str, Any] | None
    unreadable: list[tuple[Path, str]]

    def set_aside(self) -> None:
        """Rename every unreadable file to `NAME.unreadable-<n>` (main process only), logged."""
        for path, why in self.unreadable:
            aside = move_aside(path)
            log.warning("moved unreadable checkpoint %s aside to %s (%s)", path, aside, why)


def find_resume_point(folder: Path, *, fresh: bool = False) -> ResumePoint:
    """Read the checkpoints of `folder`, newest first, and decide where a run starts. Writes
    nothing (call `ResumePoint.set_aside` once the run has started).

    If checkpoints exist but none loads, this is a FadError listing each and why, unless `fresh`
    (start from iteration 0). With `fresh`, a checkpoint that does load is a FadError too: a
    fresh start would overwrite it.
    """
    folder = Path(folder)
    unreadable: list[tuple[Path, str]] = []
    pointer = folder / POINTER
    if pointer.is_file() and _pointed_name(folder) is None:
        unreadable.append((pointer, "not a readable pointer"))
    failed: list[tuple[Path, str]] = []
    for path, ckpt, why in _loaded_candidates(folder):
        missing = [key for key in RESUME_KEYS if ckpt is not None and key not in ckpt]
        if missing:  # e.g. a weights file copied in: it loads, but holds no run to go on with
            ckpt, why = None, f"not a resumable checkpoint (no {', '.join(missing)})"
        if ckpt is None:
            failed.append((path, why))
            continue
        if fresh:
            raise FadError(
                f"--fresh: {path} loads (iteration {ckpt.get('iteration')}) and a fresh start "
                "would overwrite it; resume without --fresh, or pick another OUTPUT_DIR"
            )
        return ResumePoint(path, ckpt, unreadable + failed)
    if failed and not fresh:
        listed = "; ".join(f"{path.name} ({why})" for path, why in failed)
        raise FadError(
            f"no checkpoint in {folder} loads: {listed}; replace them with loadable ones, or run "
            "with --fresh to start from iteration 0 (they are then moved aside, not deleted)"
        )
    return ResumePoint(None, None, unreadable + failed)


def move_aside(path: Path) -> Path:
    """Rename `path` to `NAME.unreadable-<n>` (the first free n) in the same folder."""
    path = Path(path)
    n = 1
    while (aside := path.with_name(f"{path.name}.unreadable-{n}")).exists():
        n += 1
    try:
        os.rename(path, aside)
    except OSError as exc:
        raise FadError(f"could not move {path} aside to {aside}: {exc.strerror or exc}") from None
    fsync_dir(path.parent)
    return aside


def load_optimizer_state(
    optimizer: torch.optim.Optimizer, state: dict[str, Any], source: str
) -> None:
    """Load an optimizer's state; one from another kind of optimizer is a FadError naming both."""
    saved = state.get("param_groups", [{}])[0]
    own = optimizer.state_dict()["param_groups"][0]
    if ("betas" in saved) != ("betas" in own):  # Adam(W) groups have betas, SGD's momentum
        kind = "Adam-like" if "betas" in saved else "SGD"
        raise FadError(
            f"{source} holds the state of an {kind} optimizer, not of "
            f"{type(optimizer).__name__}: resume with the SOLVER.OPTIMIZER it was trained with, "
            "or pick another OUTPUT_DIR"
        )
    optimizer.load_state_dict(state)


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Strict load that reports missing, unexpected and wrong-shape keys in one error."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    not_tensors = sorted(k for k in set(own) & set(state) if not torch.is_tensor(state[k]))
    if not_tensors:
        raise FadError(f"{source}: {not_tensors[0]} is not a tensor")
    wrong = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if own[k].shape != state[k].shape
    )
    wrong_type = sorted(
        f"{k} {state[k].dtype} vs {own[k].dtype}"
        for k in set(own) & set(state)
        if own[k].is_floating_point() != state[k].is_floating_point()
    )
    if missing or unexpected or wrong or wrong_type:
        parts = []
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrong shape", wrong),
            ("wrong type", wrong_type),
        ):
            if keys:
                shown = ", ".join(keys[:6]) + (
                    f", ... ({len(keys)} in all)" if len(keys) > 6 else ""
                )
                parts.append(f"{label}: {shown}")
        raise FadError(f"{source} does not match the model; " + "; ".join(parts))
    model.load_state_dict(state)

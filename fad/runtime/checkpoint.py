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
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fad.runtime.atomic import atomic_write, atomic_write_text
from fad.runtime.errors import FadError

log = logging.getLogger("fad")
POINTER = "last_checkpoint"
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


def save_checkpoint(folder: Path, name: str, payload: dict[str, Any]) -> Path:
    """Write `folder/name` atomically, then point `last_checkpoint` at it."""
    folder = Path(folder)
    path = folder / name
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write(path, lambda f: f.write(buffer.getbuffer()))
    atomic_write_text(folder / POINTER, name + "\n")
    return path


def remove_partial_writes(folder: Path) -> int:
    """Delete the temporary files (`.NAME.*.tmp`) of atomic writes whose writer was killed.

    Call at the start of a run, before anything saves; returns how many were removed.
    """
    removed = 0
    for tmp in Path(folder).glob(".?*.*.tmp"):
        tmp.unlink(missing_ok=True)
        removed += 1
    if removed:
        log.info("removed %d partial file(s) left by an interrupted run in %s", removed, folder)
    return removed


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
    def from_checkpoint(cls, ckpt: dict[str, Any]) -> CheckpointMeta:
        meta = ckpt.get("meta") or {}
        return cls(
            kind=str(meta.get("kind", "")),
            config=str(meta.get("config", "")),
            class_names=tuple(meta.get("class_names") or ()),
            category_ids=tuple(int(c) for c in meta.get("category_ids") or ()),
            genotypes=dict(meta.get("genotypes") or {}),
            fad_version=str(meta.get("fad_version", "")),
        )


def read_tensor_file(path: Path, what: str = "checkpoint") -> Any:
    """`torch.load(path, weights_only=True)` on the CPU; any failure is a one-line FadError."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FadError(f"{what} not found: {path}") from None
    except Exception as exc:  # noqa: BLE001 - truncated, corrupt or unsafe files alike
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FadError(f"cannot load {what} {path}: {first}") from None


def is_checkpoint(data: Any) -> bool:
    """Whether loaded file contents are a fad checkpoint (not a bare state dict)."""
    return isinstance(data, dict) and isinstance(data.get("model"), dict)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint with `weights_only=True`; an unreadable file is a FadError."""
    data = read_tensor_file(path)
    if not is_checkpoint(data):
        raise FadError(f"{path} is not a fad checkpoint (no 'model' entry)")
    return data


def candidate_checkpoints(folder: Path) -> list[Path]:
    """Checkpoints in `folder`, newest first: the pointed-to one, then by iteration, final last."""
    folder = Path(folder)
    found: list[Path] = []
    pointer = folder / POINTER
    if pointer.is_file():
        name = pointer.read_text(encoding="utf-8").strip()
        if name and (folder / Path(name).name).is_file():
            found.append(folder / Path(name).name)
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


def find_resume_checkpoint(folder: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint in `folder` that loads; unreadable ones are skipped with a warning."""
    for path in candidate_checkpoints(folder):
        try:
            return path, load_checkpoint(path)
        except FadError as exc:
            log.warning("skipping unreadable checkpoint: %s", exc)
    return None


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
    wrong = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if own[k].shape != state[k].shape
    )
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrong shape", wrong),
        ):
            if keys:
                shown = ", ".join(keys[:6]) + (
                    f", ... ({len(keys)} in all)" if len(keys) > 6 else ""
                )
                parts.append(f"{label}: {shown}")
        raise FadError(f"{source} does not match the model; " + "; ".join(parts))
    model.load_state_dict(state)

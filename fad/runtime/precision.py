"""Mixed precision (SOLVER.AMP): autocast of the forward passes and, for fp16, a loss scaler.

Parameters, gradients and optimizer states stay float32; only the forward passes of training
and search run under `torch.autocast` (their backward follows the forward's dtypes). "bf16" has
float32's range and needs no loss scaling. "fp16" scales the loss (`torch.amp.GradScaler`) so
that small gradients survive fp16, and skips an optimizer step whose gradients overflowed, then
halves the scale: under fp16 a non-finite gradient is the scaler's signal, not an error (a
non-finite loss still is). Losses, box decoding and scores run in float32 (`in_float32`).
Both modes run on CPU and CUDA.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch
from torch import Tensor

from fad.runtime.errors import FadError

AMP_MODES: dict[str, torch.dtype | None] = {
    "": None,
    "off": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}
HALF = (torch.float16, torch.bfloat16)
F = TypeVar("F", bound=Callable[..., Any])


class Precision:
    """The precision of one run: an autocast context for its forward passes and the fp16 loss
    scaler (disabled, every call a no-op, unless `mode` is "fp16").

    Args:
        mode: a key of `AMP_MODES` (SOLVER.AMP).
        device: where the run computes (autocast and the scaler are per device type).
    """

    def __init__(self, mode: str = "", device: torch.device | str = "cpu") -> None:
        if mode not in AMP_MODES:
            raise FadError(f"SOLVER.AMP must be one of {tuple(AMP_MODES)}, got {mode!r}")
        self.mode = mode or "off"
        self.dtype = AMP_MODES[mode]
        self.device_type = torch.device(device).type
        self.scaler = torch.amp.GradScaler(self.device_type, enabled=self.dtype == torch.float16)

    def __repr__(self) -> str:
        return f"Precision({self.mode!r}, {self.device_type!r})"

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast to the mode's dtype (a no-op context when off)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def float32(self) -> contextlib.AbstractContextManager:
        """float32 even inside an autocast region (e.g. finite differences, which half
        precision would drown in rounding)."""
        return torch.autocast(self.device_type, enabled=False)

    @property
    def scaling(self) -> bool:
        """Whether losses are scaled (fp16)."""
        return self.scaler.is_enabled()

    def loss_scale(self) -> float:
        """The current loss scale, a power of two (1.0 without scaling)."""
        return self.scaler.get_scale() if self.scaling else 1.0

    def scale(self, loss: Tensor) -> Tensor:
        """`loss` times the loss scale (the loss itself without scaling)."""
        return self.scaler.scale(loss) if self.scaling else loss

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        """Divide the gradients of `optimizer`'s parameters by the scale and note whether any is
        non-finite (at most once per optimizer between two `update`s)."""
        if self.scaling:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """`optimizer.step()`, skipped under scaling when its gradients were not finite."""
        if self.scaling:
            self.scaler.step(optimizer)
        else:
            optimizer.step()

    def update(self) -> None:
        """Once per iteration, after the last step: halve the scale if any step of the
        iteration was skipped, double it after `growth_interval` clean iterations."""
        if self.scaling:
            self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        """The scaler's state (plain numbers); empty without scaling."""
        return self.scaler.state_dict() if self.scaling else {}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Restore the scaler's state (nothing to do without scaling or without a state)."""
        if self.scaling and state:
            self.scaler.load_state_dict(state)


def _to_float32(value: Any) -> Any:
    """`value` with every half-precision tensor in it (also inside dicts, lists and tuples) cast
    to float32; other values as they are."""
    if isinstance(value, Tensor):
        return value.float() if value.dtype in HALF else value
    if isinstance(value, dict):
        return {k: _to_float32(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_to_float32(v) for v in value)
    return value


def _tensors(value: Any) -> Iterator[Tensor]:
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)
    elif type(value) in (list, tuple):
        for v in value:
            yield from _tensors(v)


def in_float32(fn: F) -> F:
    """Run `fn` outside autocast with its half-precision tensor arguments cast to float32.

    For losses and decoding: focal loss, IoU and BCE need float32's precision (a bfloat16 box
    coordinate near 1000 px is off by up to 4 px). A no-op on float32 and float64 inputs.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        found = next(_tensors((args, kwargs)), None)
        device_type = found.device.type if found is not None else "cpu"
        with torch.autocast(device_type, enabled=False):
            return fn(*_to_float32(args), **_to_float32(kwargs))

    return wrapper  # type: ignore[return-value]

"""The speed paths of a built detector: the towers' compute path, channels_last memory format
and compiled towers.

None changes a name in the state_dict (nor a value beyond float rounding): checkpoints load into
a detector with or without them. A trained model (`fad.load`, `fad predict`, `fad eval`, the
demo's latency) runs its config's compute path; exports trace the plain detector.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from fad.search_space.paths import use_compute_path
from fad.search_space.towers import Tower


def set_compute_path(detector: nn.Module, name: str) -> None:
    """Run the detector's towers by compute path ``name`` ("plain" or "fused";
    `fad.search_space.paths`)."""
    use_compute_path(detector, name)


@contextmanager
def plain_path(detector: nn.Module) -> Iterator[None]:
    """The towers on the plain path inside the block, each back on its own path after: FLOPs
    counted as the modules define them (a canvas's zero borders are no cost of the model)."""
    towers = [m for m in detector.modules() if isinstance(m, Tower)]
    saved = [tower.compute_path for tower in towers]
    try:
        for tower in towers:
            tower.compute_path = None
        yield
    finally:
        for tower, path in zip(towers, saved, strict=True):
            tower.compute_path = path


def use_channels_last(detector: nn.Module) -> None:
    """Parameters and buffers, and the input batches the detector's transform makes, in
    channels_last (NHWC) memory format: the layout tensor cores and oneDNN convolve fastest."""
    detector.to(memory_format=torch.channels_last)
    detector.transform.memory_format = torch.channels_last


RECOMPILES = 64  # graphs of `Tower.levels_by_path` kept before dynamo falls back to eager
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_towers(
    head: nn.Module, mode: str = "default", backend: str | Callable = "inductor"
) -> None:
    """`torch.compile` the head's box and cls towers in place, in ``mode`` (`COMPILE_MODES`;
    inductor only) or by another ``backend``.

    What is compiled is the call the head makes, `Tower.levels_by_path`: all FPN levels by the
    tower's compute path (on the fused path one graph per tower, no graph break, so
    "reduce-overhead" captures a tower as one CUDA graph; on the plain path the level loop).
    The modules are not wrapped: parameter names and checkpoints stay as they are. Compilation
    happens at the first call of each input size (the canvas's layout is planned for it), grad
    mode and compute path; dynamo's recompile limit is raised to `RECOMPILES` to keep them.
    """
    # one graph per tower, grad mode and input size, all of one function: room for them
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILES)
    options = {"mode": mode} if backend == "inductor" else {"backend": backend}
    compiled = torch.compile(Tower.levels_by_path, **options)
    head.box_tower.compiled_levels = compiled
    head.cls_tower.compiled_levels = compiled

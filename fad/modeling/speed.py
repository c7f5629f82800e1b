"""The speed paths of a built detector: the towers' compute path, channels_last memory format
and compiled towers.

None changes a name in the state_dict (nor a value beyond float rounding): checkpoints load into
a detector with or without them. A trained model (`fad.load`, `fad predict`, `fad eval`, the
demo's latency) runs its config's compute path; exports trace the plain detector.
"""

from __future__ import annotations

from collections.abc import Iterator
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


def compile_towers(head: nn.Module) -> None:
    """`torch.compile` the head's box and cls towers in place.

    `nn.Module.compile` compiles the module's call without wrapping it, so the parameters keep
    their names (no `_orig_mod.` prefix) and checkpoints stay loadable with and without it.
    Compilation happens at the first call of each input shape.
    """
    head.box_tower.compile()
    head.cls_tower.compile()

"""The speed paths of a built detector: the towers' compute path, channels_last memory format
and compiled towers.

None changes a name in the state_dict (nor a value beyond float rounding): checkpoints load into
a detector with or without them. A trained model (`fad.load`, `fad predict`, `fad eval`, the
demo's latency) runs its config's compute path; exports trace the plain detector.
"""

from __future__ import annotations

import torch
from torch import nn

from fad.search_space.paths import use_compute_path


def set_compute_path(detector: nn.Module, name: str) -> None:
    """Run the detector's towers by compute path ``name`` ("plain" or "fused";
    `fad.search_space.paths`)."""
    use_compute_path(detector, name)


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

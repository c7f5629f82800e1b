"""The detector registry: a detector is a name, its MODEL.<SECTION> keys, a builder, the checks
of its keys and its tower defaults; `fad.modeling.build` asks the registry, never a name.

A detector `x` is switched on by MODEL.X_ON and configured by MODEL.X (its SECTION). Every
section has the keys both built-in detectors share (NUM_CLASSES, NUM_CONVS, PRIOR_PROB,
INFERENCE_TH, NMS_TH, PRE_NMS_TOP_N, LOSS_ALPHA, LOSS_GAMMA), which `fad.modeling.build` turns
into the `DetectorParts` every builder gets; the builder reads only its own keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from torch import nn
from yacs.config import CfgNode as CN

from fad.errors import FadError
from fad.modeling.candidates import Selection
from fad.modeling.loss import FocalLoss
from fad.modeling.transform import TrainTestTransform
from fad.search_space.ops import unknown_name_error
from fad.search_space.towers import Tower


class DetectorParts(NamedTuple):
    """What `fad.modeling.build` makes for every detector from the keys they share."""

    backbone: nn.Module  # ResNet + FPN
    transform: TrainTestTransform
    towers: tuple[Tower, Tower]  # (box, cls)
    in_channels: int  # the FPN width W
    num_classes: int  # class logits K (MODEL.<SECTION>.NUM_CLASSES - 1)
    prior_prob: float  # the initial probability of every class
    selection: Selection  # the candidate selection (reported classes: the data's)
    focal: FocalLoss

    def head_options(self) -> dict[str, Any]:
        """The keyword arguments every head takes (`fad.modeling.head.TowerHead`'s and the
        prior): towers, FPN width, class logits, prior probability."""
        box_tower, cls_tower = self.towers
        return {
            "box_tower": box_tower,
            "cls_tower": cls_tower,
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "prior_prob": self.prior_prob,
        }

    def detector_options(self, head: nn.Module) -> dict[str, Any]:
        """The keyword arguments every detector takes (`OneStageDetector`'s) around `head`."""
        return {
            "backbone": self.backbone,
            "head": head,
            "transform": self.transform,
            "selection": self.selection,
            "focal": self.focal,
        }


@dataclass(frozen=True)
class DetectorEntry:
    """One detector, as the registry holds it.

    Args:
        name: what the detector is called ("fcos").
        section: its config section under MODEL ("FCOS"), switched on by MODEL.<section>_ON.
        build: (its section, the shared parts) -> the detector, an `nn.Module` with
            torchvision's interface (`fad.modeling.detector.OneStageDetector`).
        validate: (its section, "MODEL.<section>") -> None, a FadError naming the first bad key
            of its own (the shared keys are checked by `fad.modeling.build`).
        standard_norm: whether its standard towers carry GroupNorm.
        head_init_reduce: the roles ("box", "cls") whose FAD reduce conv gets the head init.
        switch_hint: added to the error when its switch is on with another detector's.
    """

    name: str
    section: str
    build: Callable[[CN, DetectorParts], nn.Module]
    validate: Callable[[CN, str], None]
    standard_norm: bool = True
    head_init_reduce: tuple[str, ...] = ("cls",)
    switch_hint: str = ""

    @property
    def switch(self) -> str:
        """The key under MODEL that turns this detector on."""
        return f"{self.section}_ON"


class DetectorRegistry(dict[str, DetectorEntry]):
    """name -> `DetectorEntry`; an unknown name is a FadError listing the registered ones."""

    def __init__(self, entries: Iterable[DetectorEntry] = ()) -> None:
        super().__init__()
        for entry in entries:
            self.register(entry)

    def register(self, entry: DetectorEntry) -> DetectorEntry:
        """Add `entry`; a second detector of the same name or section is an error."""
        for other in self.values():
            if entry.name == other.name or entry.section == other.section:
                raise ValueError(
                    f"detector {entry.name!r} (MODEL.{entry.section}) is registered already "
                    f"as {other.name!r} (MODEL.{other.section})"
                )
        self[entry.name] = entry
        return entry

    def __missing__(self, name: str) -> DetectorEntry:
        raise unknown_name_error("detector", name, self)


def require(ok: bool, message: str) -> None:
    """The checks' one step: a FadError with `message` (naming the key) unless `ok`."""
    if not ok:
        raise FadError(message)

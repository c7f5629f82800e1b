"""fad from Python: load a trained detector, build one, read and write genotypes.

    import fad
    model = fad.load("model_final.pth")
    detections = model([image])  # image: [3, H, W] RGB in [0, 1]

Re-exported lazily by `fad/__init__.py`, so `import fad` stays cheap.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from fad.config import load_config
from fad.engine.trained import TrainedModel
from fad.errors import FadError
from fad.modeling.build import build_detector
from fad.modeling.deploy import CategoryDetector
from fad.modeling.fcos.detector import FCOSDetector
from fad.search_space.genotype import (
    ROLES,
    Genotype,
    load_genotypes,
    read_genotype_file,
    write_genotype_file,
)

BACKBONES = {"resnet18": 18, "resnet34": 34, "resnet50": 50, "resnet101": 101}


def load(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> CategoryDetector:
    """A trained weights file (`fad train`'s `model_final.pth`) as an eval-mode detector.

    The genotype, classes and input sizes are read from the file. Call it as torchvision's
    detectors: `model([image, ...])` with images [3, H, W] RGB in [0, 1] returns one dict per
    image, `boxes` [N, 4] xyxy in image pixels, `scores` [N], `labels` [N] as the dataset's
    category ids; `model.class_names[i]` names `model.category_ids[i]`.
    """
    device = _device(device)
    trained = TrainedModel.read(path)
    model = CategoryDetector(trained.build(), trained.class_names, trained.category_ids)
    return model.to(device)


def _device(device: str | torch.device) -> torch.device:
    """`device` as a torch.device this machine has; anything else is a one-line FadError."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise FadError(f"device {device!r}: expected e.g. 'cpu', 'cuda' or 'cuda:0'") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise FadError(f"device {device}: this machine has {count} CUDA device(s)")
    elif device.type not in ("cpu", "meta"):
        raise FadError(f"device {device}: fad runs on 'cpu' or 'cuda'")
    return device


def fcos(
    genotype: None | str | os.PathLike[str] | Genotype | dict[str, Genotype] = None,
    backbone: str = "resnet50",
    num_classes: int = 80,
    weights: str | None = None,
    opts: Sequence[str] = (),
) -> FCOSDetector:
    """An FCOS detector (torchvision's interface, labels 1..num_classes), in training mode.

    Args:
        genotype: None for the standard towers; "paper" or "alt" (the presets), a genotype.log
            path, one `Genotype` (both towers) or {"box": ..., "cls": ...} for FAD towers.
        backbone: "resnet18", "resnet34", "resnet50" or "resnet101" (with FPN P3-P7).
        num_classes: object classes (no background).
        weights: pretrained backbone weights, as MODEL.WEIGHT (e.g. "ResNet50_Weights.IMAGENET1K_V1"
            or a local file), with frozen BatchNorm as the original; None: random, trainable BN
            (as torchvision's detectors without weights).
        opts: further `KEY VALUE` config overrides, as on the command line.
    """
    if backbone not in BACKBONES:
        raise FadError(f"backbone {backbone!r}: expected one of {', '.join(BACKBONES)}")
    genotypes = _genotypes(genotype)
    base = [
        "MODEL.BACKBONE.CONV_BODY",
        f"R-{BACKBONES[backbone]}-FPN-RETINANET",
        "MODEL.FCOS.NUM_CLASSES",
        str(num_classes + 1),
        "MODEL.FAD_ON",
        str(genotypes is not None),
    ]
    if weights:
        base += ["MODEL.WEIGHT", str(weights)]
    else:
        base += ["MODEL.BACKBONE.NORM", "BN", "MODEL.BACKBONE.FREEZE_CONV_BODY_AT", "0"]
    return build_detector(load_config(None, [*base, *opts]), num_classes, genotypes)


def _genotypes(genotype: object) -> dict[str, Genotype] | None:
    if genotype is None:
        return None
    if isinstance(genotype, Genotype):
        return dict.fromkeys(ROLES, genotype)
    if isinstance(genotype, dict):
        return dict(genotype)
    if isinstance(genotype, (str, os.PathLike)):
        return load_genotypes(genotype)
    raise FadError(
        f"genotype: expected None, a preset name, a path or a Genotype, got {genotype!r}"
    )


def read_genotypes(path: str | os.PathLike[str]) -> dict[str, Genotype]:
    """Read a genotype.log: {"box": line 1, "cls": line 2}, parsed (never evaluated)."""
    return read_genotype_file(path)


def write_genotypes(path: str | os.PathLike[str], box: Genotype, cls: Genotype) -> Path:
    """Write a genotype.log (box line, cls line) atomically; returns its path."""
    write_genotype_file(path, box, cls)
    return Path(path)

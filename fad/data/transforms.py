"""Data-side transforms: to-tensor and (training) random horizontal flip; which images the
model's resize can take.

Resizing and normalisation happen inside the model (torchvision's GeneralizedRCNNTransform):
the shorter side is scaled to `min_size` unless the longer one would exceed `max_size`. An image
far wider than high (20000 x 2) thus shrinks to nothing; `degenerate_reason` tells such images
apart from the data's side, so that training, prediction and evaluation skip and count them.
Each transform maps `(image, target) -> (image, target)`; `target["boxes"]` is FloatTensor[N, 4]
xyxy in pixels. Randomness comes from the torch RNG only (one `torch.rand` draw per flip call),
so a run is reproducible given `torch.manual_seed` (and the DataLoader's worker seeding).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image

from fad.data.detection import Target
from fad.data.image_io import to_tensor
from fad.errors import FadError

Transform = Callable[[Any, Target], tuple[Any, Target]]
MIN_RESIZED_SIDE = 2.0  # px: what a side must keep after the model's resize


def resized_size(width: int, height: int, min_size: int, max_size: int) -> tuple[float, float]:
    """(width, height) of a `width` x `height` image after the detector's resize (shorter side
    to `min_size`, longer side at most `max_size`), before rounding."""
    short, long = min(width, height), max(width, height)
    scale = min(min_size / short, max_size / long)
    return width * scale, height * scale


def degenerate_reason(width: int, height: int, resize: tuple[int, int] | None) -> str:
    """Why a `width` x `height` image is unusable by a detector that resizes to `resize` =
    (smallest min_size, max_size): a side under MIN_RESIZED_SIDE px after the resize; "" when
    it is usable (or `resize` is None)."""
    if resize is None:
        return ""
    if width < 1 or height < 1:
        return f"{width}x{height} has no pixels"
    new_width, new_height = resized_size(width, height, *resize)
    if min(new_width, new_height) >= MIN_RESIZED_SIDE:
        return ""
    return (
        f"{width}x{height} is too elongated: resized for the detector (shorter side "
        f"{resize[0]}, longer side at most {resize[1]}) it would be {new_width:.1f}x"
        f"{new_height:.1f} px"
    )


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, image: Any, target: Target) -> tuple[Any, Target]:
        for transform in self.transforms:
            image, target = transform(image, target)
        return image, target

    def __repr__(self) -> str:
        return f"Compose({self.transforms})"


class ToTensor:
    """PIL image -> FloatTensor[3, H, W] in [0, 1]; the target is unchanged."""

    def __call__(self, image: Image.Image, target: Target) -> tuple[torch.Tensor, Target]:
        return to_tensor(image), target

    def __repr__(self) -> str:
        return "ToTensor()"


def random_flip(
    images: list[torch.Tensor], targets: list[Target], generator: torch.Generator, prob: float
) -> tuple[list[torch.Tensor], list[Target]]:
    """A batch with each image (and its boxes) flipped with probability `prob`, the draws taken
    from `generator` (one per image), so a resumed run flips exactly as an uninterrupted one."""
    draws = torch.rand(len(images), generator=generator).tolist()
    pairs = [hflip(i, t) if d < prob else (i, t) for i, t, d in zip(images, targets, draws)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def hflip(image: torch.Tensor, target: Target) -> tuple[torch.Tensor, Target]:
    """Mirror a [C, H, W] image and its xyxy boxes left-right."""
    width = image.shape[-1]
    boxes = target["boxes"]
    flipped = torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], 1)
    return image.flip(-1), {**target, "boxes": flipped.reshape(-1, 4)}


class RandomHorizontalFlip:
    """With probability `prob`, mirror the image tensor and its boxes left-right."""

    def __init__(self, prob: float = 0.5) -> None:
        if not 0.0 <= prob <= 1.0:
            raise FadError(f"flip probability must be in [0, 1], got {prob}")
        self.prob = prob

    def __call__(self, image: torch.Tensor, target: Target) -> tuple[torch.Tensor, Target]:
        if self.prob > 0 and torch.rand(()).item() < self.prob:
            return hflip(image, target)
        return image, target

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(prob={self.prob})"


def build_transforms(train: bool, flip_prob: float = 0.5) -> Compose:
    """To-tensor, followed in training by a random horizontal flip with `flip_prob`."""
    transforms: list[Transform] = [ToTensor()]
    if train:
        transforms.append(RandomHorizontalFlip(flip_prob))
    return Compose(transforms)

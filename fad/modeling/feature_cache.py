"""A frozen backbone's FPN features, computed once per input image and reused.

When the body and the FPN are frozen (no parameter trains, no BatchNorm in training mode: e.g.
the demo's FrozenBN backbone with MODEL.BACKBONE.FREEZE_CONV_BODY_AT 5 and FREEZE_FPN), the
features of an image are a fixed function of its pixels and of the padded size of its batch. The
cache keys each image of a batch by a digest of its pixels and that size, computes only the images
it has not seen (as one batch), and keeps the features up to a memory budget (least recently used
first out). A flipped image is another image; multi-scale training makes other sizes, which the
cache handles, less often hit. Images are independent in a frozen backbone, so an image's features
do not depend on the other images of its batch (up to float rounding of batched convolutions).

Installed from outside (`enable_feature_cache`): the backbone's modules and state_dict are
untouched, `disable_feature_cache` restores the plain forward.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import torch
from torch import Tensor, nn

from fad.errors import FadError


def _digest(image: Tensor) -> bytes:
    data = image.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
    return hashlib.blake2b(data, digest_size=16).digest()


def check_frozen(backbone: nn.Module) -> None:
    """A FadError unless `backbone` is a fixed function of its input (see the module doc)."""
    trainable = [n for n, p in backbone.named_parameters() if p.requires_grad]
    if trainable:
        raise FadError(
            "MODEL.BACKBONE.FEATURE_CACHE_MB needs a frozen backbone (FREEZE_CONV_BODY_AT 5, "
            f"FREEZE_FPN True), but {trainable[0]} trains"
        )
    moving = [
        type(m).__name__
        for m in backbone.modules()
        if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.Dropout))
    ]
    if moving:
        raise FadError(
            "MODEL.BACKBONE.FEATURE_CACHE_MB needs a backbone without BatchNorm statistics that "
            f"train (use MODEL.BACKBONE.NORM FrozenBN), found {moving[0]}"
        )


class FeatureCache:
    """`backbone(batch)` memoised per image: [N, 3, H, W] -> OrderedDict of [N, C, h, w]."""

    def __init__(self, backbone: nn.Module, budget_mb: float) -> None:
        check_frozen(backbone)
        self.backbone = backbone
        self.forward = type(backbone).forward.__get__(backbone)  # the plain forward
        self.budget = int(budget_mb * 2**20)
        self.entries: OrderedDict[tuple, tuple[Tensor, ...]] = OrderedDict()
        self.names: list[str] = []
        self.bytes = 0
        self.hits = self.misses = 0

    def _compute(self, images: Tensor) -> list[tuple[Tensor, ...]]:
        with torch.no_grad():
            levels = self.forward(images)
        self.names = list(levels)
        return [tuple(level[i].clone() for level in levels.values()) for i in range(len(images))]

    def _store(self, key: tuple, features: tuple[Tensor, ...]) -> None:
        size = sum(t.numel() * t.element_size() for t in features)
        if size > self.budget:
            return
        self.entries[key] = features
        self.bytes += size
        while self.bytes > self.budget:
            _, old = self.entries.popitem(last=False)
            self.bytes -= sum(t.numel() * t.element_size() for t in old)

    def __call__(self, images: Tensor) -> OrderedDict[str, Tensor]:
        size = tuple(images.shape[1:])
        keys = [(_digest(image), size, images.dtype) for image in images]
        found: list[tuple[Tensor, ...] | None] = []
        for key in keys:
            features = self.entries.get(key)
            if features is not None:
                self.entries.move_to_end(key)
            found.append(features)
        missing = [i for i, f in enumerate(found) if f is None]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            for i, features in zip(missing, self._compute(images[missing]), strict=True):
                found[i] = features
                self._store(keys[i], features)
        return OrderedDict(
            (name, torch.stack([f[level] for f in found])) for level, name in enumerate(self.names)
        )


def enable_feature_cache(detector: nn.Module, budget_mb: float) -> FeatureCache:
    """Route `detector.backbone`'s forward through a `FeatureCache` of `budget_mb` MiB."""
    cache = FeatureCache(detector.backbone, budget_mb)
    detector.backbone.forward = cache
    return cache


def disable_feature_cache(detector: nn.Module) -> None:
    """The backbone's plain forward again."""
    detector.backbone.__dict__.pop("forward", None)

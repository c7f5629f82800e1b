"""FCOS locations: the nominal grid of every FPN level, as the square anchors torchvision expects.

FCOS puts the location of cell (i, j) of a level with stride s at (j * s + s // 2, i * s + s // 2).
torchvision's `AnchorGenerator` instead derives the stride as padded image size // grid size and
centres cells at (j * stride, i * stride): off by half a stride, and off by more on P6/P7 when the
padded image is not a multiple of 128 (for 800x1088, the last P7 row sits at 684 px, not 832).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchvision.models.detection.image_list import ImageList


def coordinate_dtype(feature_dtype: torch.dtype) -> torch.dtype:
    """The dtype of the locations for features of `feature_dtype`: float32 at least, since under
    autocast the features are half precision, in which a coordinate is off by whole pixels
    (bfloat16 holds the integers exactly only up to 256)."""
    return torch.promote_types(feature_dtype, torch.float32)


def level_locations(height: int, width: int, stride: int, device=None, dtype=None) -> Tensor:
    """[height * width, 2] (x, y) locations of one level, row-major, at k * s + s // 2."""
    dtype = dtype or torch.float32
    xs = torch.arange(width, device=device, dtype=dtype) * stride + stride // 2
    ys = torch.arange(height, device=device, dtype=dtype) * stride + stride // 2
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([x.reshape(-1), y.reshape(-1)], dim=1)


class LocationGrid(nn.Module):
    """The locations of all levels as squares of side s centred on them.

    Called as torchvision's anchor generator, `grid(images, features)` returns, per image, a
    [sum_l H_l * W_l, 4] xyxy tensor (levels concatenated in order, row-major within a level):
    the location is the square's centre, the level's stride its side.
    """

    def __init__(self, strides: Sequence[int]) -> None:
        super().__init__()
        self.strides = tuple(int(s) for s in strides)

    def anchors(self, sizes: Sequence[tuple[int, int]], device=None, dtype=None) -> Tensor:
        """[sum H * W, 4] for feature maps of `sizes` [(H, W) per level]."""
        if len(sizes) != len(self.strides):
            raise ValueError(f"{len(sizes)} feature levels for {len(self.strides)} strides")
        levels = []
        for (height, width), stride in zip(sizes, self.strides):
            centers = level_locations(height, width, stride, device, dtype)
            half = torch.full_like(centers, stride / 2)
            levels.append(torch.cat([centers - half, centers + half], dim=1))
        return torch.cat(levels)

    def forward(self, images: ImageList, features: list[Tensor]) -> list[Tensor]:
        sizes = [tuple(f.shape[-2:]) for f in features]
        grid = self.anchors(sizes, features[0].device, coordinate_dtype(features[0].dtype))
        return [grid for _ in images.image_sizes]

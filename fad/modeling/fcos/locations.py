"""FCOS's locations as the square anchors torchvision's FCOS expects (see `fad.modeling.locations`
for the grid and why it is not torchvision's)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchvision.models.detection.image_list import ImageList

from fad.modeling.locations import coordinate_dtype, level_locations


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

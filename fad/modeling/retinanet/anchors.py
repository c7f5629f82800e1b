"""RetinaNet's anchors as maskrcnn-benchmark makes them, on the nominal grid of each FPN level.

Per level of stride s, the cell anchors are made as the original's `generate_anchors`: for each
aspect ratio r (height / width) the s x s window becomes round(sqrt(s * s / r)) wide and
round(width * r) high (rounded half to even, as numpy), then it is scaled to every size of the
level (`octave_sizes`). Ratio-major order: A = len(ratios) * len(sizes) anchors per location.

The anchors of location (i, j) are centred on (j * s + s // 2, i * s + s // 2), the point
`fad.modeling.locations` uses for FCOS: the original centres them on pixel (s - 1) / 2 of its "+1"
pixel convention, which is s / 2 in continuous coordinates. torchvision's `AnchorGenerator` derives
the stride from the padded image size instead and centres anchors on k * stride.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList

from fad.modeling.locations import coordinate_dtype, level_locations


def octave_sizes(
    anchor_sizes: Sequence[float], octave: float = 2.0, scales_per_octave: int = 3
) -> tuple[tuple[float, ...], ...]:
    """Per level: size * octave ** (k / scales_per_octave), k = 0..scales_per_octave - 1
    (MODEL.RETINANET.ANCHOR_SIZES, OCTAVE, SCALES_PER_OCTAVE)."""
    return tuple(
        tuple(size * octave ** (k / scales_per_octave) for k in range(scales_per_octave))
        for size in anchor_sizes
    )


def cell_anchors(stride: int, sizes: Sequence[float], aspect_ratios: Sequence[float]) -> Tensor:
    """[len(aspect_ratios) * len(sizes), 4] xyxy anchors centred on (0, 0), as the original."""
    anchors = []
    for ratio in aspect_ratios:
        width = round(math.sqrt(stride * stride / ratio))
        height = round(width * ratio)
        for size in sizes:
            scale = size / stride
            half_w, half_h = width * scale / 2, height * scale / 2
            anchors.append([-half_w, -half_h, half_w, half_h])
    return torch.tensor(anchors, dtype=torch.float64).float()


class AnchorGrid(AnchorGenerator):
    """The cell anchors of every level on its nominal grid (see the module doc).

    Called as torchvision's anchor generator, `grid(images, features)` returns, per image, a
    [sum_l H_l * W_l * A, 4] xyxy tensor: levels in order, locations row-major, A anchors per
    location (the layout of `RetinaNetTowerHead`'s outputs).

    Args:
        strides: the nominal stride of each level (MODEL.RETINANET.ANCHOR_STRIDES).
        sizes: the anchor sizes of each level (`octave_sizes`).
        aspect_ratios: height / width of the anchors, the same for every level.
    """

    def __init__(
        self,
        strides: Sequence[int],
        sizes: Sequence[Sequence[float]],
        aspect_ratios: Sequence[float],
    ) -> None:
        if len(strides) != len(sizes):
            raise ValueError(f"{len(sizes)} levels of anchor sizes for {len(strides)} strides")
        sizes = tuple(tuple(s) for s in sizes)
        super().__init__(sizes, (tuple(aspect_ratios),) * len(sizes))
        self.strides = tuple(int(s) for s in strides)
        self.cell_anchors = [
            cell_anchors(s, level_sizes, aspect_ratios) for s, level_sizes in zip(strides, sizes)
        ]

    def anchors(self, sizes: Sequence[tuple[int, int]], device=None, dtype=None) -> Tensor:
        """[sum H * W * A, 4] for feature maps of `sizes` [(H, W) per level]."""
        if len(sizes) != len(self.strides):
            raise ValueError(f"{len(sizes)} feature levels for {len(self.strides)} strides")
        levels = []
        for (height, width), stride, cell in zip(sizes, self.strides, self.cell_anchors):
            centres = level_locations(height, width, stride, device, dtype).repeat(1, 2)
            cell = cell.to(device=device, dtype=centres.dtype)
            levels.append((centres[:, None, :] + cell[None]).reshape(-1, 4))  # [HW * A, 4]
        return torch.cat(levels)

    def forward(self, images: ImageList, features: list[Tensor]) -> list[Tensor]:
        sizes = [tuple(f.shape[-2:]) for f in features]
        grid = self.anchors(sizes, features[0].device, coordinate_dtype(features[0].dtype))
        return [grid for _ in images.image_sizes]

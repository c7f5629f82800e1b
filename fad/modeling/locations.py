"""The nominal grid of an FPN level, where FCOS's locations and RetinaNet's anchors sit.

FCOS puts the location of cell (i, j) of a level with stride s at (j * s + s // 2, i * s + s // 2);
the original RetinaNet centres its anchors there too (`fad.modeling.retinanet.anchors`).
torchvision's `AnchorGenerator` instead derives the stride as padded image size // grid size and
centres cells at (j * stride, i * stride): off by half a stride, and off by more on P6/P7 when the
padded image is not a multiple of 128 (for 800x1088, the last P7 row sits at 684 px, not 832).
"""

from __future__ import annotations

import torch
from torch import Tensor


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

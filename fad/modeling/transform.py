"""The train/test transform every detector uses: torchvision's resize, normalise and batch, with
the original's separate train (multi-scale) and test sizes and its BGR 0..255 option."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.models.detection.transform import GeneralizedRCNNTransform


class TrainTestTransform(GeneralizedRCNNTransform):
    """torchvision's resize/normalise/batch transform with separate train and test sizes.

    Training picks the shorter side uniformly from `train_min_sizes` (multi-scale); evaluation
    uses `test_min_size`. Switching the module to training or evaluation mode switches sizes.
    `to_bgr255` feeds the network BGR pixels in 0..255 (caffe2 weights, INPUT.TO_BGR255), then
    normalised by `image_mean` / `image_std` given in that range. `memory_format` is the layout of
    the batches it makes (`fad.modeling.speed.use_channels_last` sets channels_last).
    """

    memory_format: torch.memory_format = torch.contiguous_format

    def __init__(
        self,
        train_min_sizes: Sequence[int],
        train_max_size: int,
        test_min_size: int,
        test_max_size: int,
        image_mean: Sequence[float],
        image_std: Sequence[float],
        size_divisible: int = 32,
        to_bgr255: bool = False,
    ) -> None:
        super().__init__(
            tuple(train_min_sizes),
            train_max_size,
            list(image_mean),
            list(image_std),
            size_divisible=max(1, size_divisible),
        )
        self.train_sizes = (tuple(train_min_sizes), train_max_size)
        self.test_sizes = ((test_min_size,), test_max_size)
        self.to_bgr255 = to_bgr255

    def normalize(self, image: Tensor) -> Tensor:
        if self.to_bgr255:
            image = image[[2, 1, 0]] * 255
        return super().normalize(image)

    def batch_images(self, images: list[Tensor], size_divisible: int = 32) -> Tensor:
        """[N, 3, H, W] padded batch, in `memory_format`."""
        batched = super().batch_images(images, size_divisible)
        return batched.contiguous(memory_format=self.memory_format)

    def train(self, mode: bool = True) -> TrainTestTransform:
        self.min_size, self.max_size = self.train_sizes if mode else self.test_sizes
        return super().train(mode)

"""FCOS (the "imprv" variant) on torchvision's FCOS skeleton (transform, forward), with fad's
head (injected towers), the original's location grid, targets, losses and candidate selection."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchvision.models.detection.fcos import FCOS
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import batched_nms, clip_boxes_to_image

from fad.modeling.locations import LocationGrid
from fad.modeling.loss import decode_ltrb, fcos_losses, match_locations
from fad.runtime.precision import in_float32


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


class FCOSDetector(FCOS):
    """FCOS whose head is `fad.modeling.head.FCOSTowerHead` (towers injected).

    `forward(images, targets)` returns the loss dict (`loss_cls`, `loss_reg`, `loss_centerness`)
    in training mode and a list of detections (`boxes` xyxy in input-image pixels, `scores`,
    `labels` 1..K) in eval mode, as torchvision's detectors do.

    As the original FCOS: locations on the nominal grid of `strides` (`LocationGrid`), and at
    inference the candidates of a level are the (location, class) pairs whose class probability
    exceeds `score_thresh`; the best `topk_candidates` of them by probability x centerness are
    decoded and scored sqrt(probability x centerness), then class-wise NMS keeps at most
    `detections_per_img`. Only the first `reported_classes` class logits become detections (the
    original's NUM_CLASSES may exceed the dataset's classes; the others are always negatives).
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        transform: TrainTestTransform,
        *,
        strides: Sequence[int] = (8, 16, 32, 64, 128),
        center_sampling_radius: float = 1.5,
        norm_reg_targets: bool = True,
        score_thresh: float = 0.05,
        nms_thresh: float = 0.6,
        detections_per_img: int = 100,
        topk_candidates: int = 1000,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        iou_loss_type: str = "giou",
        reported_classes: int | None = None,
    ) -> None:
        super().__init__(
            backbone,
            num_classes=head.cls_logits.out_channels,
            head=head,
            center_sampling_radius=center_sampling_radius,
            score_thresh=score_thresh,
            nms_thresh=nms_thresh,
            detections_per_img=detections_per_img,
            topk_candidates=topk_candidates,
        )
        self.transform = transform
        self.anchor_generator = LocationGrid(strides)
        self.norm_reg_targets = norm_reg_targets
        self.reported_classes = reported_classes or head.cls_logits.out_channels
        self.loss_options = {
            "norm_reg_targets": norm_reg_targets,
            "focal_alpha": focal_alpha,
            "focal_gamma": focal_gamma,
            "iou_loss_type": iou_loss_type,
        }

    def compute_loss(
        self,
        targets: list[dict[str, Tensor]],
        head_outputs: dict[str, Tensor],
        anchors: list[Tensor],
        num_anchors_per_level: list[int],
    ) -> dict[str, Tensor]:
        matched = [
            match_locations(a, t["boxes"], num_anchors_per_level, self.center_sampling_radius)
            for a, t in zip(anchors, targets)
        ]
        return fcos_losses(head_outputs, anchors, targets, matched, **self.loss_options)

    @in_float32
    def postprocess_detections(
        self,
        head_outputs: dict[str, list[Tensor]],
        anchors: list[list[Tensor]],
        image_shapes: list[tuple[int, int]],
    ) -> list[dict[str, Tensor]]:
        """Per image: candidates per level, decoded, then class-wise NMS (see the class doc);
        in float32, outside autocast."""
        detections = []
        for index, image_shape in enumerate(image_shapes):
            boxes, scores, labels = [], [], []
            for level, level_anchors in enumerate(anchors[index]):
                found = self._level_candidates(
                    head_outputs["cls_logits"][level][index],
                    head_outputs["bbox_ctrness"][level][index],
                    head_outputs["bbox_regression"][level][index],
                    level_anchors,
                )
                boxes.append(clip_boxes_to_image(found[0], image_shape))
                scores.append(found[1])
                labels.append(found[2])
            boxes_t, scores_t, labels_t = torch.cat(boxes), torch.cat(scores), torch.cat(labels)
            keep = batched_nms(boxes_t, scores_t, labels_t, self.nms_thresh)
            keep = keep[: self.detections_per_img]
            detections.append(
                {"boxes": boxes_t[keep], "scores": scores_t[keep], "labels": labels_t[keep]}
            )
        return detections

    def _level_candidates(
        self, logits: Tensor, ctrness: Tensor, regression: Tensor, anchors: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """[HW, K], [HW, 1], [HW, 4], [HW, 4] -> boxes [P, 4], scores [P], labels [P] (1..K)."""
        probs = torch.sigmoid(logits[:, : self.reported_classes])
        candidate = probs > self.score_thresh
        products = (probs * torch.sigmoid(ctrness))[candidate]
        location, label = candidate.nonzero(as_tuple=True)
        if products.numel() > self.topk_candidates:
            products, best = products.topk(self.topk_candidates)
            location, label = location[best], label[best]
        boxes = decode_ltrb(anchors[location], regression[location], self.norm_reg_targets)
        return boxes, torch.sqrt(products), label + 1

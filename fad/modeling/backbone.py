"""ResNet / ResNeXt + FPN (P3-P7, P6 and P7 from P5 or C5) from torchvision's building blocks."""

from __future__ import annotations

from functools import partial

from torch import nn
from torchvision.models import resnet
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops import FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from fad.errors import FadError
from fad.runtime.precision import in_float32

# depth -> (block, layers per stage)
RESNET_LAYOUTS: dict[int, tuple[type[nn.Module], list[int]]] = {
    18: (resnet.BasicBlock, [2, 2, 2, 2]),
    34: (resnet.BasicBlock, [3, 4, 6, 3]),
    50: (resnet.Bottleneck, [3, 4, 6, 3]),
    101: (resnet.Bottleneck, [3, 4, 23, 3]),
    152: (resnet.Bottleneck, [3, 8, 36, 3]),
}

NORMS = ("FrozenBN", "BN", "GN")  # MODEL.BACKBONE.NORM
FPN_STRIDES = (8, 16, 32, 64, 128)  # P3-P7

# (depth, groups, width per group) -> torchvision ImageNet weights enum name
TORCHVISION_WEIGHTS: dict[tuple[int, int, int], str] = {
    (18, 1, 64): "ResNet18_Weights.IMAGENET1K_V1",
    (34, 1, 64): "ResNet34_Weights.IMAGENET1K_V1",
    (50, 1, 64): "ResNet50_Weights.IMAGENET1K_V1",
    (101, 1, 64): "ResNet101_Weights.IMAGENET1K_V1",
    (152, 1, 64): "ResNet152_Weights.IMAGENET1K_V1",
    (50, 32, 4): "ResNeXt50_32X4D_Weights.IMAGENET1K_V1",
    (101, 32, 8): "ResNeXt101_32X8D_Weights.IMAGENET1K_V1",
    (101, 64, 4): "ResNeXt101_64X4D_Weights.IMAGENET1K_V1",
}


def conv_body_depth(conv_body: str) -> int:
    """`R-50-FPN-RETINANET` -> 50; an unknown body is an error listing the valid ones."""
    head = "-".join(conv_body.split("-")[:2])
    depths = {f"R-{depth}": depth for depth in RESNET_LAYOUTS}
    if head not in depths or "FPN" not in conv_body:
        raise FadError(
            f"MODEL.BACKBONE.CONV_BODY {conv_body!r} is not supported; use one of "
            + ", ".join(f"{b}-FPN-RETINANET" for b in depths)
        )
    return depths[head]


def _norm_layer(norm: str) -> type[nn.Module] | partial:
    if norm == "FrozenBN":
        return FrozenBatchNorm2d
    if norm == "BN":
        return nn.BatchNorm2d
    return partial(nn.GroupNorm, 32)


def build_resnet(depth: int, groups: int = 1, width_per_group: int = 64, norm: str = "FrozenBN"):
    """A torchvision ResNet (ResNeXt when groups > 1) without weights."""
    block, layers = RESNET_LAYOUTS[depth]
    if block is resnet.BasicBlock and (groups, width_per_group) != (1, 64):
        raise ValueError(f"ResNet-{depth} has no grouped (ResNeXt) variant")
    return resnet.ResNet(
        block, layers, groups=groups, width_per_group=width_per_group, norm_layer=_norm_layer(norm)
    )


def freeze_stages(body: nn.Module, freeze_at: int) -> None:
    """Freeze the stem (freeze_at >= 1) and res2..res{freeze_at} as maskrcnn-benchmark does."""
    stages = ["conv1", "layer1", "layer2", "layer3", "layer4"][:freeze_at]
    for name, parameter in body.named_parameters():
        stem = name.startswith(("conv1.", "bn1."))
        if (stem and freeze_at >= 1) or any(name.startswith(s + ".") for s in stages[1:]):
            parameter.requires_grad_(False)


class Float32P6P7(LastLevelP6P7):
    """torchvision's P6/P7 block, computed in float32 under autocast (same parameters and keys).

    On a 2-thread CPU, torch 2.14's bfloat16 weight gradient of P7's stride-2 conv from a 1 x 1 P6
    (a small input, e.g. 64 px) comes out NaN about one time in six
    (`tests/modeling/test_modeling_backbone.py`); the two smallest maps cost nothing in float32.
    """

    forward = in_float32(LastLevelP6P7.forward)


def build_resnet_fpn(
    depth: int,
    *,
    groups: int = 1,
    width_per_group: int = 64,
    out_channels: int = 256,
    norm: str = "FrozenBN",
    freeze_at: int = 2,
    freeze_fpn: bool = False,
    use_c5: bool = False,
) -> BackboneWithFPN:
    """ResNet body + FPN on C3-C5 + P6/P7 computed from P5 (FCOS, `USE_C5 False`) or from C5
    (RetinaNet, `MODEL.RETINANET.USE_C5 True`).

    Output: an OrderedDict of 5 maps ('0','1','2','p6','p7') at strides 8..128, `out_channels` each.
    `freeze_fpn` also freezes the FPN (with `freeze_at` 5 and FrozenBN: a fixed feature extractor).
    """
    body = build_resnet(depth, groups, width_per_group, norm)
    freeze_stages(body, freeze_at)
    expansion = 4 if depth >= 50 else 1
    in_channels = [64 * expansion * 2, 64 * expansion * 4, 64 * expansion * 8]
    p6p7 = Float32P6P7(in_channels[-1] if use_c5 else out_channels, out_channels)
    p6p7.use_P5 = not use_c5  # torchvision guesses it from the widths, which may coincide
    backbone = BackboneWithFPN(
        body,
        return_layers={"layer2": "0", "layer3": "1", "layer4": "2"},
        in_channels_list=in_channels,
        out_channels=out_channels,
        extra_blocks=p6p7,
    )
    if freeze_fpn:
        backbone.fpn.requires_grad_(False)
    return backbone

from __future__ import annotations

import pytest
import torch

from fad.config import load_config
from fad.errors import FadError
from fad.modeling import pretrained as pretrained_mod
from fad.modeling.backbone import build_resnet, build_resnet_fpn
from fad.modeling.build import build_detector


def test_fpn_levels_have_strides_8_to_128_and_p6_from_p5():
    backbone = build_resnet_fpn(18, out_channels=64, norm="BN", freeze_at=0)
    feats = list(backbone(torch.rand(1, 3, 128, 160)).values())
    assert [tuple(f.shape[-2:]) for f in feats] == [(16, 20), (8, 10), (4, 5), (2, 3), (1, 2)]
    assert all(f.shape[1] == 64 for f in feats)
    assert backbone.fpn.extra_blocks.use_P5


@pytest.mark.parametrize(
    "depth, groups, width, params_m",
    [(18, 1, 64, 11.69), (50, 1, 64, 25.56), (101, 32, 8, 88.79), (101, 64, 4, 83.46)],
)
def test_resnet_and_resnext_match_torchvision_sizes(depth, groups, width, params_m):
    body = build_resnet(depth, groups, width, norm="BN")
    assert sum(p.numel() for p in body.parameters()) / 1e6 == pytest.approx(params_m, abs=0.01)


@pytest.mark.parametrize(
    "freeze_at, trainable_prefixes",
    [
        (0, {"conv1", "layer1", "layer2", "layer3", "layer4"}),
        (2, {"layer2", "layer3", "layer4"}),
        (5, set()),
    ],
)
def test_freeze_conv_body_at(freeze_at, trainable_prefixes):
    backbone = build_resnet_fpn(18, out_channels=64, norm="BN", freeze_at=freeze_at)
    trainable = {n.split(".")[0] for n, p in backbone.body.named_parameters() if p.requires_grad}
    assert trainable - {"bn1"} == trainable_prefixes


def test_unreachable_pretrained_weights_is_a_clear_error(monkeypatch):
    def offline(self, *args, **kwargs):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr("torchvision.models._api.WeightsEnum.get_state_dict", offline)
    cfg = load_config(
        None,
        [
            "MODEL.WEIGHT",
            "catalog://ImageNetPretrained/MSRA/R-50",
            "MODEL.BACKBONE.CONV_BODY",
            "R-18-FPN-RETINANET",
        ],
    )
    with pytest.raises(FadError) as err:
        build_detector(cfg, 3)
    message = str(err.value)
    assert "ResNet18_Weights.IMAGENET1K_V1" in message and "MODEL.WEIGHT ''" in message


def test_local_backbone_weights_load_and_mismatches_are_logged(tmp_path, caplog):
    body = build_resnet(18, norm="BN")
    state = {f"backbone.body.{k}": v.clone() for k, v in body.state_dict().items()}
    state.pop("backbone.body.layer4.1.bn2.weight")
    path = tmp_path / "r18.pth"
    torch.save(state, path)
    cfg = load_config(
        None,
        [
            "MODEL.WEIGHT",
            str(path),
            "MODEL.BACKBONE.CONV_BODY",
            "R-18-FPN-RETINANET",
            "MODEL.BACKBONE.NORM",
            "BN",
        ],
    )
    with caplog.at_level("WARNING", logger="fad"):
        model = build_detector(cfg, 3)
    loaded = model.backbone.body.state_dict()
    assert torch.equal(loaded["conv1.weight"], body.state_dict()["conv1.weight"])
    assert "1 missing keys" in caplog.text and "layer4.1.bn2.weight" in caplog.text


def test_missing_weight_file_is_an_error():
    cfg = load_config(None, ["MODEL.WEIGHT", "/no/such/r50.pth"])
    with pytest.raises(FadError, match="not found"):
        pretrained_mod.load_pretrained_backbone(build_resnet(18), cfg.MODEL.WEIGHT, (18, 1, 64))


def test_p6_p7_run_in_float32_under_bf16_autocast_so_p7s_gradient_stays_finite():
    """torch 2.14's CPU bf16 weight gradient of a stride-2 3x3 conv on a 1x1 map is sometimes NaN
    with 2 threads (seen 3 times in 20); the block runs in float32, and never is."""
    import torch

    from fad.modeling.backbone import build_resnet_fpn

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(0)
        backbone = build_resnet_fpn(18, out_channels=32, norm="BN", freeze_at=0)
        p7 = backbone.fpn.extra_blocks.p7
        for _ in range(20):
            backbone.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                levels = backbone(torch.rand(2, 3, 64, 64))  # P6 and P7: 1x1
            assert levels["p7"].shape[-2:] == (1, 1) and levels["p7"].dtype == torch.float32
            sum(level.float().sum() for level in levels.values()).backward()
            assert torch.isfinite(p7.weight.grad).all()
    finally:
        torch.set_num_threads(threads)

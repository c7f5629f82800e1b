"""The detector registry: a new detector plugs in with its own module and one registry line
(the toy of `toy_detector.py`), every registered detector trains and detects, and names are
looked up with errors that list the registered ones."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn
from toy_detector import TOY, ToyDetector, toy_section

from fad.config import load_config
from fad.config.validate import validate_config
from fad.errors import FadError
from fad.modeling.build import build_detector, detector_name, tower_spec
from fad.modeling.candidates import Selection
from fad.modeling.deploy import FixedSizeDetector
from fad.modeling.detectors import DETECTORS
from fad.modeling.registry import DetectorRegistry

SMALL = ["MODEL.RESNETS.BACKBONE_OUT_CHANNELS", "32", "MODEL.FAD.NUM_CHANNELS_BOX", "32"]
SMALL += ["MODEL.FAD.NUM_CHANNELS_CLS", "32", "MODEL.FAD.NUM_NODES_BOX", "1"]
SMALL += ["MODEL.FAD.NUM_NODES_CLS", "1", "INPUT.MIN_SIZE_TRAIN", "(64,)"]
SMALL += ["INPUT.MAX_SIZE_TRAIN", "96", "INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "96"]
pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture
def toy():
    """The toy detector, registered for one test: the one line a new detector adds."""
    DETECTORS.register(TOY)
    yield TOY
    del DETECTORS[TOY.name]


def _config(shapes_config, name: str, *opts: str):
    """The shapes config with detector `name` switched on (the toy gets a MODEL.TOY section)."""
    cfg = load_config(shapes_config, [*SMALL, *opts])
    cfg.defrost()
    for entry in DETECTORS.values():
        cfg.MODEL[entry.switch] = entry.name == name
    if name == TOY.name:
        cfg.MODEL.TOY = toy_section(cfg.MODEL.FCOS)
    cfg.freeze()
    return cfg


def _batch() -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    torch.manual_seed(1)
    images = [torch.rand(3, 64, 80), torch.rand(3, 72, 64)]
    box = {"boxes": torch.tensor([[5.0, 6.0, 40.0, 50.0]]), "labels": torch.tensor([2])}
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    return images, [box, empty]


def _trains_and_detects(model: nn.Module) -> dict[str, torch.Tensor]:
    """Forward + backward on a tiny batch (every parameter of the head gets a gradient), then
    eval detections with torchvision's keys; returns the losses."""
    images, targets = _batch()
    losses = model.train()(images, targets)
    assert losses and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    for name, param in model.head.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    with torch.no_grad():
        detections = model.eval()(images)
    assert len(detections) == 2
    for found in detections:
        assert set(found) == {"boxes", "scores", "labels"} and found["boxes"].shape[1] == 4
        assert ((found["labels"] >= 1) & (found["labels"] <= 5)).all()
    return losses


@pytest.mark.parametrize("name", sorted(DETECTORS))
@pytest.mark.parametrize("towers", ["standard", "search"])
def test_every_registered_detector_trains_and_detects(shapes_config, name, towers):
    search = ["MODEL.FAD_ON", "True", "MODEL.FAD.SEARCH", "True"] if towers == "search" else []
    cfg = _config(shapes_config, name, *search)
    torch.manual_seed(0)
    _trains_and_detects(build_detector(cfg, 5, load_weights=False))


def test_a_toy_detector_plugs_in_with_its_module_and_one_registry_line(shapes_config, toy):
    cfg = _config(shapes_config, "toy", "MODEL.FCOS.INFERENCE_TH", "0.0")  # copied to TOY
    validate_config(cfg)
    assert detector_name(cfg) == "toy"
    spec = tower_spec(cfg, None)  # the toy's tower defaults, from its entry
    assert not spec.standard_norm and spec.head_init_reduce == ("box", "cls")
    torch.manual_seed(0)
    model = build_detector(cfg, 5, load_weights=False)
    assert isinstance(model, ToyDetector)
    assert not any(isinstance(m, nn.GroupNorm) for m in model.head.modules())
    assert set(_trains_and_detects(model)) == {"loss_toy_cls", "loss_toy_box"}
    image = torch.rand(3, 64, 96)
    with torch.no_grad():  # the export form runs the toy's own selection too
        (eager,) = model.eval()([image])
        boxes, scores, labels = FixedSizeDetector(model, [1, 2, 3, 4, 5], (64, 96))(image)
    assert len(eager["boxes"]) == len(boxes) == 100
    torch.testing.assert_close(scores.sort().values, eager["scores"].sort().values)


def test_a_detector_s_own_checks_run_in_config_validation(shapes_config, toy):
    cfg = _config(shapes_config, "toy")
    cfg.defrost()
    cfg.MODEL.TOY.STRIDES = (8, 16)
    with pytest.raises(FadError, match=r"MODEL\.TOY\.STRIDES needs one stride per level"):
        validate_config(cfg)
    cfg.MODEL.TOY.STRIDES = (8, 16, 32, 64, 128)
    cfg.MODEL.TOY.NMS_TH = 0.0  # a shared key, checked for every detector alike
    with pytest.raises(FadError, match=r"MODEL\.TOY\.NMS_TH must be in \(0, 1\], got 0\.0"):
        validate_config(cfg)


def test_switches_name_every_registered_detector(shapes_config, toy):
    cfg = _config(shapes_config, "toy")
    cfg.defrost()
    cfg.MODEL.FCOS_ON = True
    with pytest.raises(FadError, match="MODEL.FCOS_ON and MODEL.TOY_ON are both True"):
        detector_name(cfg)
    cfg.MODEL.FCOS_ON = cfg.MODEL.TOY_ON = False
    message = "MODEL.FCOS_ON, MODEL.RETINANET_ON and MODEL.TOY_ON are all False"
    with pytest.raises(FadError, match=message):
        detector_name(cfg)


def test_names_are_looked_up_with_a_helpful_error():
    with pytest.raises(FadError, match="unknown detector 'fcoss'; valid: fcos, retinanet"):
        DETECTORS["fcoss"]
    assert DETECTORS["fcos"].switch == "FCOS_ON"


def test_a_second_detector_of_the_same_name_or_section_is_refused():
    registry = DetectorRegistry([TOY])
    with pytest.raises(ValueError, match="'toy' .* registered already"):
        registry.register(TOY)
    with pytest.raises(ValueError, match=r"MODEL\.TOY"):
        registry.register(dataclasses.replace(TOY, name="other"))


def test_the_selection_options_are_torchvision_s_keywords(shapes_config):
    cfg = _config(shapes_config, "fcos", "MODEL.FCOS.PRE_NMS_TOP_N", "7")
    model = build_detector(cfg, 5, load_weights=False)
    expected = Selection(0.05, 0.6, 100, 7, 5)
    assert expected.torchvision_options() == {
        key: getattr(model, key)
        for key in ("score_thresh", "nms_thresh", "detections_per_img", "topk_candidates")
    }
    assert model.reported_classes == 5

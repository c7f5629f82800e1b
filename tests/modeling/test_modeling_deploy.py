"""The deployable forms of the detector compute the eager detector's detections."""

from __future__ import annotations

import pytest
import torch

from fad.config import load_config
from fad.modeling.build import build_detector
from fad.modeling.candidates import class_wise_nms
from fad.modeling.deploy import CategoryDetector, FixedSizeDetector
from fad.search_space.genotype import load_genotypes

SMALL = ["MODEL.RESNETS.BACKBONE_OUT_CHANNELS", "32", "MODEL.FAD.NUM_CHANNELS_BOX", "32"]
SMALL += ["MODEL.FAD.NUM_CHANNELS_CLS", "32", "INPUT.MIN_SIZE_TEST", "64"]
SMALL += ["INPUT.MAX_SIZE_TEST", "96", "MODEL.FCOS.INFERENCE_TH", "0.0"]
IDS = [1, 3, 5, 7, 9]
RETINANET = ["MODEL.FCOS_ON", "False", "MODEL.RETINANET_ON", "True"]
RETINANET += ["MODEL.RETINANET.NUM_CLASSES", "6", "MODEL.RETINANET.INFERENCE_TH", "0.0"]
RETINANET += ["MODEL.RETINANET.PRE_NMS_TOP_N", "50", "MODEL.RETINANET.NMS_TH", "0.9"]


def _detector(shapes_config, genotype: str | None, *opts: str):
    fad_on = ["MODEL.FAD_ON", str(genotype is not None)]
    cfg = load_config(shapes_config, [*SMALL, *fad_on, *opts])
    torch.manual_seed(0)
    genotypes = load_genotypes(genotype) if genotype else None
    return build_detector(cfg, 5, genotypes, load_weights=False).eval()


def _same_detections(expected: dict, boxes, scores, labels) -> None:
    assert len(boxes) == len(expected["boxes"])
    order_e = expected["scores"].argsort(descending=True, stable=True)
    order_g = scores.argsort(descending=True, stable=True)
    torch.testing.assert_close(scores[order_g], expected["scores"][order_e])
    torch.testing.assert_close(boxes[order_g], expected["boxes"][order_e], atol=1e-4, rtol=1e-4)
    assert torch.equal(labels[order_g], expected["labels"][order_e])


@pytest.mark.parametrize("genotype", [None, "paper"])
@pytest.mark.parametrize("size", [(64, 96), (100, 120), (96, 64)])
def test_fixed_size_detector_equals_the_eager_detector(shapes_config, genotype, size):
    model = _detector(shapes_config, genotype)
    eager = CategoryDetector(model, list("abcde"), IDS)
    fixed = FixedSizeDetector(model, IDS, size)
    torch.manual_seed(1)
    image = torch.rand(3, *size)
    (expected,) = eager([image])
    assert len(expected["boxes"]) == 100  # threshold 0: the NMS and the cap are exercised
    assert set(expected["labels"].tolist()) <= set(IDS)
    with torch.no_grad():
        _same_detections(expected, *fixed(image))


def test_no_candidate_gives_empty_outputs_of_the_right_shapes(shapes_config):
    model = _detector(shapes_config, None, "MODEL.FCOS.INFERENCE_TH", "0.05")  # prior 0.01
    with torch.no_grad():
        boxes, scores, labels = FixedSizeDetector(model, IDS, (64, 96))(torch.rand(3, 64, 96))
    assert boxes.shape == (0, 4) and scores.shape == (0,) and labels.shape == (0,)
    assert class_wise_nms(boxes, scores, labels, 0.6).shape == (0,)


@pytest.mark.parametrize("genotype", [None, "paper"])
def test_a_retinanet_fixed_size_detector_equals_the_eager_detector(shapes_config, genotype):
    """The fixed-size form is the detector's own selection: it serves RetinaNet's anchors too."""
    model = _detector(shapes_config, genotype, *RETINANET)
    fixed = FixedSizeDetector(model, IDS, (64, 96))
    assert (
        sum(fixed.level_counts)
        == fixed.anchors.shape[0]
        == 9 * sum(h * w for h, w in ((8, 12), (4, 6), (2, 3), (1, 2), (1, 1)))
    )
    torch.manual_seed(1)
    image = torch.rand(3, 64, 96)
    (expected,) = CategoryDetector(model, list("abcde"), IDS)([image])
    assert len(expected["boxes"]) == 100
    with torch.no_grad():
        _same_detections(expected, *fixed(image))


def test_category_detector_maps_labels_and_stays_in_eval_mode(shapes_config):
    model = _detector(shapes_config, None)
    eager = CategoryDetector(model.train(), list("abcde"), IDS)
    assert not eager.training and not eager.detector.training
    eager.train()
    assert not eager.training and not eager.detector.training
    image = torch.rand(3, 64, 96)
    (found,) = eager([image])
    with torch.no_grad():
        (raw,) = model([image])
    assert found["labels"].tolist() == [IDS[k - 1] for k in raw["labels"].tolist()]
    assert torch.equal(found["boxes"], raw["boxes"]) and not found["scores"].requires_grad
    with pytest.raises(ValueError, match="4 class names for 5 ids"):
        CategoryDetector(model, list("abcd"), IDS)

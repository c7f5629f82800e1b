"""A weights file read once into one object; files written before the refactor still load."""

from __future__ import annotations

import torch

from fad.config import load_config
from fad.engine.trained_model import TrainedModel, checkpoint_meta
from fad.modeling.build import build_detector
from fad.runtime.checkpoint import CheckpointMeta, save_checkpoint
from fad.search_space.genotype import PRESETS

NAMES = ["circle", "square", "triangle", "star", "cross"]
SMALL = ["MODEL.RESNETS.BACKBONE_OUT_CHANNELS", "32", "MODEL.FAD.NUM_CHANNELS_BOX", "32"]
SMALL += ["MODEL.FAD.NUM_CHANNELS_CLS", "32", "MODEL.FAD_ON", "True"]


def test_a_weights_file_in_the_first_versions_layout_loads(shapes_config, tmp_path):
    cfg = load_config(shapes_config, SMALL)
    box, cls = PRESETS["paper"]
    model = build_detector(cfg, 5, {"box": box, "cls": cls}, load_weights=False)
    legacy_meta = {  # exactly what fad 0.1.0's checkpoint_meta wrote
        "kind": "train",
        "fad_version": "0.1.0",
        "config": cfg.dump(),
        "class_names": NAMES,
        "category_ids": [1, 3, 5, 7, 9],
        "genotypes": {"box": str(box), "cls": str(cls)},
    }
    payload = {"model": model.state_dict(), "iteration": 7, "meta": legacy_meta}
    path = save_checkpoint(tmp_path, "model_final.pth", payload)
    trained = TrainedModel.read(path)
    assert trained.class_names == NAMES and trained.category_ids == [1, 3, 5, 7, 9]
    assert trained.label_to_category_id == {1: 1, 2: 3, 3: 5, 4: 7, 5: 9}
    assert trained.genotypes == {"box": box, "cls": cls}
    rebuilt = trained.build()
    assert not rebuilt.training
    for key, value in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value)
    with torch.no_grad():
        (detections,) = rebuilt([torch.rand(3, 64, 80)])
    assert set(detections) == {"boxes", "scores", "labels"}


def test_the_meta_layout_is_unchanged(shapes_config):
    cfg = load_config(shapes_config, SMALL[:2])
    meta = checkpoint_meta(cfg, NAMES, None, "train", [1, 3, 5, 7, 9])
    written = meta.to_dict()
    assert set(written) == {
        "kind",
        "fad_version",
        "config",
        "class_names",
        "category_ids",
        "genotypes",
    }
    assert CheckpointMeta.from_checkpoint({"meta": written}) == meta

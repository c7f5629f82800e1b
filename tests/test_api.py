"""The Python API: the README's example runs as written; fad.fcos builds through the config."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fad
from fad.errors import FadError
from fad.search_space.genotype import PRESETS

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_python() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    (block,) = [b for b in blocks if "fad.load(" in b]
    return block


def test_the_readme_example_runs_as_written(tiny_trained, tiny_shapes, tmp_path, monkeypatch):
    (tmp_path / "model_final.pth").symlink_to(tiny_trained)
    picture = sorted((Path(tiny_shapes["root"]) / "val").glob("*.jpg"))[0]
    (tmp_path / "picture.jpg").symlink_to(picture)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(_readme_python(), str(README), "exec"), namespace)  # noqa: S102 - our README
    model, detections = namespace["model"], namespace["detections"]
    assert not model.training and model.class_names[:2] == ["circle", "square"]
    assert model.category_ids == [1, 3, 5, 7, 9]
    assert set(detections[0]) == {"boxes", "scores", "labels"} and len(detections[0]["boxes"])
    assert set(detections[0]["labels"].tolist()) <= {1, 3, 5, 7, 9}


def test_load_gives_category_ids_of_the_trained_detector(tiny_trained):
    model = fad.load(tiny_trained)
    image = torch.rand(3, 90, 120)
    (found,) = model([image])
    with torch.no_grad():
        (raw,) = model.detector([image])
    assert found["labels"].tolist() == [model.category_ids[k - 1] for k in raw["labels"].tolist()]
    assert torch.equal(found["boxes"], raw["boxes"])


@pytest.mark.parametrize("genotype", [None, "paper", PRESETS["alt"][0], "file"])
def test_fcos_builds_standard_and_fad_towers_through_the_config(genotype, tmp_path):
    if genotype == "file":
        genotype = fad.write_genotypes(tmp_path / "genotype.log", *PRESETS["alt"])
    opts = ["MODEL.RESNETS.BACKBONE_OUT_CHANNELS", "32", "MODEL.FAD.NUM_CHANNELS_BOX", "32"]
    opts += ["MODEL.FAD.NUM_CHANNELS_CLS", "32"]
    model = fad.fcos(genotype, backbone="resnet18", num_classes=3, opts=opts)
    assert model.head.cls_logits.out_channels == 3 and model.training
    kind = {type(model.head.box_tower).__name__, type(model.head.cls_tower).__name__}
    assert kind == ({"StandardTower"} if genotype is None else {"FixedTower"})
    norms = {type(m).__name__ for m in model.backbone.body.modules() if "Norm" in type(m).__name__}
    assert norms == {"BatchNorm2d"}  # no pretrained weights: trainable BN, as torchvision
    model.eval()
    with torch.no_grad():
        (found,) = model([torch.rand(3, 64, 80)])
    assert set(found) == {"boxes", "scores", "labels"}


def test_fcos_errors_name_the_argument():
    with pytest.raises(FadError, match="backbone 'vgg16'"):
        fad.fcos(backbone="vgg16")
    with pytest.raises(FadError, match="neither a genotype preset"):
        fad.fcos("no-such-genotype")


def test_genotypes_round_trip_through_the_public_names(tmp_path):
    box, cls = PRESETS["paper"]
    path = fad.write_genotypes(tmp_path / "genotype.log", box, cls)
    assert fad.read_genotypes(path) == {"box": box, "cls": cls}


def test_import_fad_stays_cheap():
    code = "import sys, fad; print(fad.__version__, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [fad.__version__, "False"]
    assert {"load", "fcos", "read_genotypes", "write_genotypes"} <= set(dir(fad))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        fad.nothing  # noqa: B018


def test_load_runs_the_towers_on_the_stored_compute_path_with_the_plain_paths_outputs(
    tiny_trained,
):
    from fad.engine.trained_model import TrainedModel
    from fad.search_space.fused.path import FusedPath
    from fad.search_space.towers import Tower

    def paths(model: torch.nn.Module) -> set[str]:
        return {type(m.compute_path).__name__ for m in model.modules() if isinstance(m, Tower)}

    trained = TrainedModel.read(tiny_trained)
    assert trained.config().MODEL.COMPUTE_PATH == "fused"
    model = fad.load(tiny_trained)
    assert paths(model) == {FusedPath.__name__}
    plain = trained.build(trained.config(None, ["MODEL.COMPUTE_PATH", "plain"]))
    assert paths(plain) == {"NoneType"}
    image = torch.rand(3, 90, 120, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        (fused_out,) = model.detector([image])
        (plain_out,) = plain([image])
    assert len(fused_out["boxes"]) == len(plain_out["boxes"]) > 0
    torch.testing.assert_close(fused_out["scores"], plain_out["scores"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fused_out["boxes"], plain_out["boxes"], rtol=1e-4, atol=1e-3)

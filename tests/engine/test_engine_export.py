"""`fad export`: ONNX (run in onnxruntime) and TorchScript files that detect what PyTorch detects,
written only after that check; `fad predict` on an .onnx file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

import fad
from fad.cli import main
from fad.config import load_config
from fad.engine.export_format import ExportedDetector
from fad.engine.trained_model import checkpoint_meta
from fad.errors import FadError
from fad.modeling.build import build_detector
from fad.runtime.checkpoint import save_checkpoint
from fad.search_space.genotype import load_genotypes

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytestmark = pytest.mark.slow

SIZE = (96, 128)  # tiny_trained's INPUT.MIN_SIZE_TEST x INPUT.MAX_SIZE_TEST: the default size
NAMES = ["circle", "square", "triangle", "star", "cross"]
IDS = [1, 3, 5, 7, 9]
SMALL = ["MODEL.RESNETS.BACKBONE_OUT_CHANNELS", "32", "MODEL.FAD.NUM_CHANNELS_BOX", "32"]
SMALL += ["MODEL.FAD.NUM_CHANNELS_CLS", "32", "INPUT.MIN_SIZE_TEST", "96"]
SMALL += ["INPUT.MAX_SIZE_TEST", "128"]


def _write_weights(folder: Path, shapes_config: Path, genotype: str | None, th: str) -> Path:
    """An untrained detector saved as `fad train` saves one (threshold `th`: 0 keeps 100 boxes)."""
    opts = [*SMALL, "MODEL.FAD_ON", str(genotype is not None), "MODEL.FCOS.INFERENCE_TH", th]
    cfg = load_config(shapes_config, opts)
    genotypes = load_genotypes(genotype) if genotype else None
    torch.manual_seed(0)
    model = build_detector(cfg, len(NAMES), genotypes, load_weights=False)
    meta = checkpoint_meta(cfg, NAMES, genotypes, "train", IDS)
    return save_checkpoint(
        folder, "model_final.pth", {"model": model.state_dict(), "meta": meta.to_dict()}
    )


@pytest.fixture(scope="module")
def weights(tiny_trained, shapes_config, tmp_path_factory) -> dict[str, Path]:
    paper = _write_weights(tmp_path_factory.mktemp("paper"), shapes_config, "paper", "0.0")
    return {"standard": tiny_trained, "paper": paper}


@pytest.fixture(scope="module")
def exported(weights, tmp_path_factory) -> dict[tuple[str, str], Path]:
    """Each detector exported in each format with the README's command."""
    out = tmp_path_factory.mktemp("exported")
    files = {}
    for name, path in weights.items():
        for fmt, suffix in (("onnx", ".onnx"), ("torchscript", ".pt")):
            target = out / f"{name}{suffix}"
            assert main(["export", str(path), "--format", fmt, "--out", str(target)]) == 0
            files[name, fmt] = target
    return files


def _shapes_scenes(count: int, size: tuple[int, int] = SIZE) -> list[torch.Tensor]:
    """Images the export's own check did not see (other seeds than its sample images)."""
    from fad.data.image_io import to_tensor
    from fad.data.shapes import render_sample

    pictures = [Image.fromarray(render_sample(7, "train", i).image) for i in range(count)]
    return [to_tensor(p.resize(size[::-1], Image.BILINEAR)) for p in pictures]


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("name", ["standard", "paper"])
def test_exported_file_detects_what_pytorch_detects(weights, exported, name, fmt):
    model = fad.load(weights[name])
    runner = ExportedDetector.open(exported[name, fmt])
    assert runner.meta.size == SIZE and runner.class_names == NAMES
    assert runner.category_ids == IDS == model.category_ids
    for image in _shapes_scenes(2):
        (expected,) = model([image])
        boxes, scores, labels = runner.run(image)
        assert len(boxes) == len(expected["boxes"]) == 100
        _assert_same_detections(expected, boxes, scores, labels)


def _assert_same_detections(expected, boxes, scores, labels, atol=1e-5):
    """Every detection pairs with one expected detection of the same label, a score within
    `atol` and a box within 0.1 %. Near-tied scores may come in another order, and a tie at the
    top-k cut may keep another detection: only those at the cut's score may stay unpaired."""
    unpaired = set(range(len(expected["scores"])))
    lost = []
    for box, score, label in zip(boxes, scores, labels, strict=True):
        tolerance = 1e-3 * box.abs().clamp(min=1)
        pair = next(
            (
                j
                for j in sorted(unpaired)
                if expected["labels"][j] == label
                and abs(float(expected["scores"][j] - score)) <= atol
                and ((expected["boxes"][j] - box).abs() <= tolerance).all()
            ),
            None,
        )
        if pair is None:
            lost.append(float(score))
        else:
            unpaired.remove(pair)
    cut = float(expected["scores"].min())
    assert all(abs(score - cut) <= atol for score in lost), (lost, cut)
    assert all(abs(float(expected["scores"][j]) - cut) <= atol for j in unpaired)


def test_the_json_beside_the_file_describes_it(exported):
    meta = json.loads(Path(f"{exported['paper', 'onnx']}.json").read_text())
    assert meta["format"] == "onnx" and meta["size"] == list(SIZE)
    assert meta["class_names"] == NAMES and meta["category_ids"] == IDS
    assert meta["pixel_mean"] == [0.485, 0.456, 0.406] and meta["to_bgr255"] is False
    assert set(meta["genotypes"]) == {"box", "cls"} and meta["fad_version"] == fad.__version__
    assert str(load_genotypes("paper")["cls"]) == meta["genotypes"]["cls"]


def test_predict_on_the_onnx_file_writes_the_weights_files_json(weights, exported, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for i, image in enumerate(_shapes_scenes(3)):
        pixels = (image * 255).round().byte().permute(1, 2, 0).numpy()
        Image.fromarray(pixels).save(images / f"{i}.png")
    runs = {}
    for kind, model in (("weights", weights["standard"]), ("onnx", exported["standard", "onnx"])):
        out = tmp_path / kind
        assert main(["predict", str(model), str(images), "--out", str(out)]) == 0
        assert sorted(p.name for p in out.glob("*.jpg")) == ["0.jpg", "1.jpg", "2.jpg"]
        runs[kind] = json.loads((out / "predictions.json").read_text())["detections"]
    assert len(runs["onnx"]) == len(runs["weights"]) == 300
    unmatched = list(runs["onnx"])
    for a in runs["weights"]:
        match = next(b for b in unmatched if _same_record(a, b))
        unmatched.remove(match)


def _same_record(a: dict, b: dict) -> bool:
    """The same detection in two predictions.json (boxes rounded to 0.01 px, scores to 1e-6)."""
    keys = ("file_name", "category_id", "category_name")
    return (
        all(a[k] == b[k] for k in keys)
        and abs(a["score"] - b["score"]) <= 2e-6
        and all(abs(x - y) <= 0.011 + 1e-3 * abs(x) for x, y in zip(a["bbox"], b["bbox"]))
    )


def test_an_image_without_detections_exports_and_runs(shapes_config, tmp_path, capsys):
    path = _write_weights(tmp_path, shapes_config, None, "0.05")  # untrained: p = 0.01 < 0.05
    out = tmp_path / "empty.onnx"
    assert main(["export", str(path), "--format", "onnx", "--out", str(out)]) == 0
    assert "the sample images gave no detections" in capsys.readouterr().out
    (found,) = ExportedDetector.open(out)([torch.rand(3, 70, 90)])
    assert found["boxes"].shape == (0, 4) and found["scores"].shape == (0,)
    assert found["labels"].shape == (0,)
    assert "takes 96x128 images: resizing a 70x90 one to it" in capsys.readouterr().out
    with pytest.raises(FadError, match=r"takes float images in \[0, 1\], got torch.uint8"):
        ExportedDetector.open(out)([torch.zeros(3, 96, 128, dtype=torch.uint8)])
    with pytest.raises(FadError, match=r"takes images of shape \[3, 96, 128\], got \[1, 96, 128\]"):
        ExportedDetector.open(out).run(torch.zeros(1, 96, 128))


def test_an_export_that_differs_writes_nothing(tiny_trained, tmp_path, monkeypatch, capsys):
    out = tmp_path / "model.pt"
    out.write_bytes(b"the previous export")
    real_run = ExportedDetector.run

    def drops_one(self, image):
        boxes, scores, labels = real_run(self, image)
        return boxes[1:], scores[1:], labels[1:]

    monkeypatch.setattr(ExportedDetector, "run", drops_one)
    argv = ["export", str(tiny_trained), "--format", "torchscript", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert (
        "differs from the PyTorch detector on sample image 0: 99 detections instead of 100" in err
    )
    assert len(err.strip().splitlines()) == 1
    assert out.read_bytes() == b"the previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--format", "onnx", "--out", "{tmp}/m.pt"], "must end in .onnx"),
        (["--format", "torchscript", "--out", "{tmp}/m.onnx"], "must not end in .onnx"),
        (["--format", "onnx", "--out", "{tmp}/m.onnx", "--size", "96by128"], "expected HxW"),
        (["--format", "onnx", "--out", "{tmp}/m.onnx", "--size", "8x128"], "in [32, 4096]"),
        (["--format", "torchscript", "--out", "{weights}"], "is the weights file itself"),
    ],
)
def test_bad_arguments_are_one_line_errors_before_any_work(
    tiny_trained, tmp_path, capsys, args, message
):
    before = tiny_trained.read_bytes()
    argv = [a.format(tmp=tmp_path, weights=tiny_trained) for a in args]
    assert main(["export", str(tiny_trained), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == [] and tiny_trained.read_bytes() == before


def test_onnx_without_onnxruntime_names_the_extra(tiny_trained, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(
        "fad.engine.export.find_spec", lambda name: None if name == "onnxruntime" else True
    )
    out = tmp_path / "m.onnx"
    assert main(["export", str(tiny_trained), "--format", "onnx", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("exporting to ONNX needs onnxruntime: pip install 'fad[export]'")
    assert list(tmp_path.iterdir()) == []


def test_an_onnx_file_not_from_fad_export_is_a_clear_error(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    value = helper.make_tensor_value_info("image", TensorProto.FLOAT, [3, 4, 4])
    graph = helper.make_graph(
        [helper.make_node("Identity", ["image"], ["boxes"])], "g", [value], [value]
    )
    plain = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph), plain)
    with pytest.raises(FadError, match=r"plain.onnx has no 'fad' metadata"):
        ExportedDetector.open(plain)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a protobuf")
    with pytest.raises(FadError, match=r"garbage.onnx is not a valid ONNX model"):
        ExportedDetector.open(garbage)


def test_a_retinanet_is_refused_in_one_line_before_any_work(shapes_config, tmp_path, capsys):
    retinanet = shapes_config.parent / "retinanet_R_18_FPN.yaml"
    cfg = load_config(retinanet, [*SMALL])
    model = build_detector(cfg, len(NAMES), load_weights=False)
    meta = checkpoint_meta(cfg, NAMES, None, "train", IDS)
    path = save_checkpoint(
        tmp_path, "model_final.pth", {"model": model.state_dict(), "meta": meta.to_dict()}
    )
    out = tmp_path / "r.onnx"
    assert main(["export", str(path), "--format", "onnx", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "is a RetinaNet (MODEL.RETINANET_ON)" in err and err.count("\n") == 1
    assert not out.exists()

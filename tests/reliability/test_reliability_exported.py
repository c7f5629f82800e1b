"""Promise 14 (exports): an exported file whose fad metadata, graph names or outputs are malformed
is a one-line error naming the file and the field, never a traceback or a 120 GB resize; a killed
export is recognised and cleaned up; the model and its json change together."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fad.cli import main
from fad.engine.export import export_detector
from fad.engine.exported import ExportedDetector
from fad.runtime import atomic
from fad.runtime.atomic import is_own_temporary

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

META = {
    "format": "onnx",
    "size": [32, 32],
    "class_names": ["circle", "square"],
    "category_ids": [1, 3],
    "pixel_mean": [0.485, 0.456, 0.406],
    "pixel_std": [0.229, 0.224, 0.225],
    "to_bgr255": False,
}
GOOD = {"boxes": [[1.0, 2.0, 10.0, 12.0]], "scores": [0.9], "labels": [3]}


def handmade_onnx(path: Path, meta=None, outputs=None, names=None, input_name="image") -> Path:
    """An ONNX graph `image` [3, 32, 32] -> constant outputs, with fad metadata `meta`."""
    outputs = {**GOOD, **(outputs or {})}
    names = names or list(outputs)
    nodes, infos = [], []
    for name, (key, value) in zip(names, outputs.items()):
        kind = (
            TensorProto.INT64
            if key == "labels" and isinstance(_first(value), int)
            else (TensorProto.FLOAT)
        )
        tensor = helper.make_tensor(f"{name}_value", kind, _shape(value), _flat(value))
        nodes.append(helper.make_node("Constant", [], [name], value=tensor))
        infos.append(helper.make_tensor_value_info(name, kind, _shape(value)))
    image = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [3, 32, 32])
    model = helper.make_model(
        helper.make_graph(nodes, "handmade", [image], infos),
        opset_imports=[helper.make_opsetid("", 18)],
    )
    model.ir_version = 8
    helper.set_model_props(model, {"fad": json.dumps({**META, **(meta or {})})})
    onnx.save(model, path)
    return path


def _shape(value) -> list[int]:
    return [len(value), *(_shape(value[0]) if value and isinstance(value[0], list) else [])]


def _flat(value) -> list:
    return [x for v in value for x in (_flat(v) if isinstance(v, list) else [v])]


def _first(value):
    return _flat(value)[0] if _flat(value) else 0


@pytest.fixture
def one_image(tiny_shapes, tmp_path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    shutil.copy(sorted((Path(tiny_shapes["root"]) / "val").glob("*.jpg"))[0], folder)
    return folder


def test_a_handmade_file_with_good_metadata_and_outputs_runs(one_image, tmp_path):
    path = handmade_onnx(tmp_path / "good.onnx")
    out = tmp_path / "preds"
    assert main(["predict", str(path), str(one_image), "--out", str(out)]) == 0
    (record,) = json.loads((out / "predictions.json").read_text())["detections"]
    assert record["category_id"] == 3 and record["category_name"] == "square"


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"meta": {"size": [100000, 100000]}}, "'size': each side must be in [32, 4096]"),
        ({"meta": {"size": [32]}}, "'size': expected 2 integers"),
        ({"meta": {"category_ids": [3, 3]}}, "'category_ids': repeated values"),
        ({"meta": {"category_ids": ["1", "3"]}}, "'category_ids': expected some integers"),
        ({"meta": {"class_names": "circle"}}, "'class_names': got 'circle'"),
        ({"meta": {"class_names": ["a", "a"]}}, "'class_names': repeated names"),
        ({"meta": {"pixel_std": [0, 1, 1]}}, "'pixel_std' must be > 0"),
        ({"meta": {"format": "torchscript"}}, "says format 'torchscript', the file is onnx"),
        ({"meta": {"to_bgr255": "no"}}, "'to_bgr255': got 'no'"),
        ({"names": ["box", "scores", "labels"]}, "the graph has no output 'boxes'"),
        ({"input_name": "pixels"}, "the graph's inputs are [('pixels', 3)]"),
        ({"outputs": {"labels": [7]}}, "output 'labels' holds [7], not among the category ids"),
        ({"outputs": {"boxes": [[1.0, 2.0, 3.0]]}}, "output 'boxes' has shape [1, 3]"),
        ({"outputs": {"scores": [0.9, 0.8]}}, "output 'scores' has shape [2]"),
        ({"outputs": {"labels": [3.0]}}, "output 'labels' must hold integers"),
        ({"outputs": {"boxes": [[1.0, float("nan"), 3.0, 4.0]]}}, "hold non-finite values"),
    ],
    ids=[
        "huge_size",
        "short_size",
        "repeated_ids",
        "text_ids",
        "names_a_string",
        "repeated_names",
        "zero_std",
        "wrong_format",
        "bool_as_text",
        "output_name",
        "input_name",
        "unknown_label",
        "box_shape",
        "count_mismatch",
        "float_labels",
        "nan_box",
    ],
)
def test_a_malformed_exported_file_is_a_one_line_error_naming_file_and_field(
    fault, message, one_image, tmp_path, capsys
):
    path = handmade_onnx(tmp_path / "bad.onnx", **fault)
    out = tmp_path / "preds"
    assert main(["predict", str(path), str(one_image), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}" in err and message in err, err
    assert not out.exists() or list(out.iterdir()) == []


KILLED_EXPORT = """
import os, signal, sys
from fad.runtime import atomic
from fad.engine.export import export_detector

def dying(fd, view):
    os.write(fd, bytes(view[: len(view) // 2]))
    os.kill(os.getpid(), signal.SIGKILL)

atomic._write_all = dying
export_detector(sys.argv[1], "torchscript", sys.argv[2])
"""


@pytest.mark.slow
def test_a_killed_export_is_cleaned_up_by_the_next_and_nothing_else_is(tiny_trained, tmp_path):
    out = tmp_path / "model.pt"
    (tmp_path / "notes.tmp").write_text("the user's")
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_EXPORT, str(tiny_trained), str(out)], check=False
    )
    assert killed.returncode == -signal.SIGKILL
    (left,) = [p for p in tmp_path.iterdir() if is_own_temporary(p)]
    assert not out.exists()
    export_detector(tiny_trained, "torchscript", out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt", "model.pt.json", "notes.tmp"]
    assert not left.exists()


@pytest.mark.slow
def test_a_kill_between_the_renames_leaves_a_json_that_readers_recognise(
    tiny_trained, tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr(logging.getLogger("fad"), "propagate", True)  # after fixtures' runs
    out = tmp_path / "model.pt"
    export_detector(tiny_trained, "torchscript", out, size=(96, 128))
    old_model = out.read_bytes()
    real_replace = os.replace

    def killed_after_the_json(src, dst):
        if str(dst) == str(out):
            raise KeyboardInterrupt  # the process dies here
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", killed_after_the_json)
    with pytest.raises(KeyboardInterrupt):
        export_detector(tiny_trained, "torchscript", out, size=(128, 128))
    monkeypatch.setattr(atomic.os, "replace", real_replace)
    assert out.read_bytes() == old_model
    assert json.loads(Path(f"{out}.json").read_text())["size"] == [128, 128]
    assert not [p for p in tmp_path.iterdir() if is_own_temporary(p)]
    ExportedDetector.open(out)
    assert "model.pt.json describes another model than" in caplog.text
    caplog.clear()
    export_detector(tiny_trained, "torchscript", out, size=(128, 128))
    ExportedDetector.open(out)
    assert "describes another model" not in caplog.text

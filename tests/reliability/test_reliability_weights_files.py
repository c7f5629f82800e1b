"""A weights file whose stored metadata has the wrong types, repeats classes or does not match
its head, or whose tensors are NaN or of the wrong type, is a one-line error naming the file and
the field in `fad predict`, `fad eval` and `fad.load`: never a traceback, never merged or renamed
classes, never truncated weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

import fad
from fad.cli import main
from fad.errors import FadError

FAULTS = {
    "meta_not_a_dict": (lambda c: c.update(meta="oops"), "its stored meta is not a dict"),
    "names_a_number": (
        lambda c: c["meta"].update(class_names=5),
        "field 'class_names' must be a list",
    ),
    "ids_as_text": (
        lambda c: c["meta"].update(category_ids=["a", "b", "c", "d", "e"]),
        "field 'category_ids' must be a list of integers",
    ),
    "repeated_names": (
        lambda c: c["meta"].update(class_names=["circle"] * 5),
        "field 'class_names' repeats a name: classes would be merged",
    ),
    "repeated_ids": (
        lambda c: c["meta"].update(category_ids=[1, 1, 5, 7, 9]),
        "field 'category_ids' repeats an id",
    ),
    "ids_count": (
        lambda c: c["meta"].update(category_ids=[1, 3, 5]),
        "field 'category_ids' has 3 ids for 5 class_names",
    ),
    "more_names_than_the_head": (
        lambda c: c["meta"].update(
            class_names=[*c["meta"]["class_names"], "extra"],
            category_ids=[*c["meta"]["category_ids"], 99],
        ),
        "has 6 names for a head of 5 classes",
    ),
    "genotypes_list": (
        lambda c: c["meta"].update(genotypes=[1]),
        "field 'genotypes' must map tower names",
    ),
    "config_number": (lambda c: c["meta"].update(config=7), "field 'config' is not text"),
    "nan_weight": (
        lambda c: c["model"]["head.cls_logits.weight"].fill_(float("nan")),
        "model.head.cls_logits.weight holds non-finite values",
    ),
    "integer_weight": (
        lambda c: c["model"].update(
            {"head.cls_logits.weight": c["model"]["head.cls_logits.weight"].long()}
        ),
        "wrong type: head.cls_logits.weight torch.int64 vs torch.float32",
    ),
}


def _spoilt(tiny_weights: Path, tmp_path: Path, fault: str) -> Path:
    ckpt = torch.load(tiny_weights, weights_only=True)
    FAULTS[fault][0](ckpt)
    path = tmp_path / f"{fault}.pth"
    torch.save(ckpt, path)
    return path


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_spoilt_weights_file_is_one_line_naming_file_and_field_everywhere(
    fault, tiny_weights, tiny_shapes, fast_opts, shapes_config, tmp_path, capsys
):
    path = _spoilt(tiny_weights, tmp_path, fault)
    message = FAULTS[fault][1]
    with pytest.raises(FadError) as err:
        fad.load(path)
    assert str(path) in str(err.value) and message in str(err.value)
    image = sorted((Path(tiny_shapes["root"]) / "val").glob("*.jpg"))[0]
    out = tmp_path / "preds"
    evaluate = ["eval", "--config-file", str(shapes_config), *fast_opts]
    for argv in (
        ["predict", str(path), str(image), "--out", str(out)],
        [*evaluate, "MODEL.WEIGHT", str(path), "DATASETS.TEST", f"('{tiny_shapes['val']}',)"],
    ):
        assert main(argv) == 2
        err_text = capsys.readouterr().err
        assert err_text.count("\n") == 1 and str(path) in err_text and message in err_text
    assert not out.exists()


@pytest.mark.parametrize(
    ("device", "message"),
    [("quantum", "device 'quantum': expected e.g. 'cpu'"), ("cuda:7", "CUDA device(s)")],
)
def test_fad_load_on_a_device_this_machine_lacks_is_a_one_line_error(device, message, tiny_weights):
    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    with pytest.raises(FadError, match=message.replace("(", r"\(").replace(")", r"\)")):
        fad.load(tiny_weights, device=device)


def test_the_untouched_weights_file_still_loads(tiny_weights, tmp_path):
    copy = tmp_path / "model_final.pth"
    shutil.copy(tiny_weights, copy)
    model = fad.load(copy)
    assert model.category_ids == [1, 3, 5, 7, 9]

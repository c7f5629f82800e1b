"""Promise 8 (annotations, structure errors): a malformed COCO json given to `fad train` or
`fad eval` is a one-line error (exit code 2) naming the file and the offending record."""

from __future__ import annotations

import json
import os

import pytest

from fad.cli import main


def _break(data: dict, how: str) -> object:
    if how == "top_level_list":
        return [data]
    if how == "no_annotations":
        return {k: v for k, v in data.items() if k != "annotations"}
    if how == "bbox_missing":
        del data["annotations"][3]["bbox"]
    elif how == "bbox_text":
        data["annotations"][3]["bbox"] = [1, 2, "wide", 4]
    elif how == "width_text":
        data["images"][2]["width"] = "122px"
    elif how == "repeated_image_id":
        data["images"][2]["id"] = data["images"][1]["id"]
    elif how == "category_without_name":
        del data["categories"][1]["name"]
    elif how == "iscrowd_two":
        data["annotations"][3]["iscrowd"] = 2
    return data


CASES = [
    ("top_level_list", "expected a json object at the top level"),
    ("no_annotations", "missing or non-list key 'annotations'"),
    ("bbox_missing", "annotations[3] (id 4): 'bbox' must be 4 numbers, got None"),
    ("bbox_text", "annotations[3] (id 4): 'bbox' must be 4 numbers, got [1, 2, 'wide', 4]"),
    ("width_text", "images[2] (id 3): 'width' must be an integer, got '122px'"),
    ("repeated_image_id", "images[2] (id 2): repeated id"),
    ("category_without_name", "categories[1] (id 3): missing or non-string 'name'"),
    ("iscrowd_two", "annotations[3] (id 4): 'iscrowd' must be 0 or 1, got 2"),
]


def _train(shapes_config, fast_opts, name, capsys) -> tuple[int, str]:
    opts = fast_opts + ["DATASETS.TRAIN", f"('{name}',)", "SOLVER.MAX_ITER", "2"]
    code = main(["train", "--config-file", str(shapes_config), *opts])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("how", "expected"), CASES, ids=[how for how, _ in CASES])
def test_malformed_train_json_is_one_line_error_naming_file_and_record(
    how, expected, shapes_copy, shapes_config, fast_opts, capsys
):
    path = shapes_copy["train_json"]
    path.write_text(json.dumps(_break(json.loads(path.read_text()), how)))
    code, err = _train(shapes_config, fast_opts, shapes_copy["train"], capsys)
    assert code == 2
    assert err == f"fad train: error: {path}: {expected}\n"


def test_truncated_train_json_names_file_line_and_column(
    shapes_copy, shapes_config, fast_opts, capsys
):
    path = shapes_copy["train_json"]
    text = json.dumps(json.loads(path.read_text()), indent=1)
    path.write_text(text[: len(text) // 2])
    code, err = _train(shapes_config, fast_opts, shapes_copy["train"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"fad train: error: {path}: invalid json at line ")
    assert " column " in err


def test_malformed_test_json_in_fad_eval(
    shapes_copy, shapes_config, fast_opts, tiny_weights, capsys
):
    path = shapes_copy["val_json"]
    path.write_text(json.dumps(_break(json.loads(path.read_text()), "bbox_text")))
    opts = fast_opts + ["DATASETS.TEST", f"('{shapes_copy['val']}',)"]
    code = main(
        ["eval", "--config-file", str(shapes_config), *opts, "MODEL.WEIGHT", str(tiny_weights)]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err == f"fad eval: error: {path}: {CASES[3][1]}\n"


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda data: "[" * 100_000 + "]" * 100_000, "invalid json: nested too deeply"),
        (lambda data: '{"images": ' + "9" * 100_000 + "}", "invalid json: Exceeds the limit"),
        (
            lambda data: data["images"][0].update(width=10**400),
            "images[0] (id 1): 'width' must be an integer below 2**63",
        ),
        (
            lambda data: data["annotations"][0].update(bbox=[0, 0, 10**400, 5]),
            "annotations[0] (id 1): 'bbox' must be 4 numbers",
        ),
        (lambda data: "pipe", "not a regular file"),
    ],
    ids=["nested_100000_deep", "100000_digits", "width_10e400", "bbox_10e400", "named_pipe"],
)
def test_deep_huge_or_special_json_is_a_one_line_error_in_data_check(
    spoil, message, shapes_copy, capsys
):
    path = shapes_copy["train_json"]
    data = json.loads(path.read_text())
    text = spoil(data)
    if text == "pipe":
        path.unlink()
        os.mkfifo(path)
    else:
        path.write_text(text if isinstance(text, str) else json.dumps(data))
    assert main(["data", "check", shapes_copy["train"]]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and message in err, err

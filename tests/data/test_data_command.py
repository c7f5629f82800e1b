"""`fad data shapes` and `fad data check` through the CLI entry point."""

from __future__ import annotations

import json

import pytest

from fad.cli import main


def test_shapes_command_writes_and_reports(tmp_path, capsys):
    out = tmp_path / "set"
    argv = ["data", "shapes", "--out", str(out), "--train", "3", "--val", "2"]
    argv += ["--seed", "5", "--min-size", "40", "--max-size", "48"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    val = json.loads((out / "annotations/instances_val.json").read_text())
    boxes = len(val["annotations"])
    assert val["info"]["level"] == "easy"  # the default
    assert f"level easy, to {out}" in printed and "train: 3 images" in printed
    assert f"val: 2 images, {boxes} boxes" in printed
    assert main(argv) == 2  # refuses to overwrite
    assert "not empty" in capsys.readouterr().err


def test_shapes_command_level_flag(tmp_path, capsys):
    argv = ["data", "shapes", "--train", "1", "--val", "1", "--min-size", "40", "--max-size", "40"]
    assert main([*argv, "--out", str(tmp_path / "h"), "--level", "hard"]) == 0
    assert "level hard" in capsys.readouterr().out
    info = json.loads((tmp_path / "h/annotations/instances_train.json").read_text())["info"]
    assert info["level"] == "hard"
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--out", str(tmp_path / "m"), "--level", "medium"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'medium'" in capsys.readouterr().err


def test_check_command_prints_the_report(tmp_path, capsys):
    out = tmp_path / "set"
    assert main(["data", "shapes", "--out", str(out), "--train", "2", "--val", "1",
                 "--min-size", "40", "--max-size", "40"]) == 0  # fmt: skip
    capsys.readouterr()
    name = f"{out}/val@{out}/annotations/instances_val.json"
    assert main(["data", "check", name, "--eval"]) == 0
    assert "(eval): 1 images" in capsys.readouterr().out
    assert main(["data", "check", "no_such_set"]) == 2
    assert "unknown dataset" in capsys.readouterr().err

"""`fad data check` opens every image: it names each unreadable one and exits non-zero when a
training run with the bad-image budget (DATALOADER.MAX_BAD_IMAGE_FRACTION, or
--max-bad-fraction) would stop; in --eval mode any unreadable image is an error, as in `fad eval`."""

from __future__ import annotations

from pathlib import Path

import pytest

from fad.cli import main


@pytest.fixture
def spoilt(shapes_copy) -> tuple[str, list[Path]]:
    """The copied train set (12 images) with one image truncated and one deleted."""
    truncated = Path(shapes_copy["train_dir"]) / "000003.jpg"
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    deleted = Path(shapes_copy["train_dir"]) / "000007.jpg"
    deleted.unlink()
    return shapes_copy["train"], [truncated, deleted]


def test_unreadable_images_are_named_and_fail_the_default_budget(spoilt, capsys):
    name, bad = spoilt
    assert main(["data", "check", name]) == 2
    captured = capsys.readouterr()
    for path in bad:
        assert str(path) in captured.out
    assert "2 of 12 images unreadable" in captured.out
    assert captured.err.count("\n") == 1 and "a training run would stop" in captured.err
    assert "DATALOADER.MAX_BAD_IMAGE_FRACTION (0.01) allows 0" in captured.err


def test_a_larger_budget_passes_but_still_names_them(spoilt, capsys):
    name, bad = spoilt
    assert main(["data", "check", name, "--max-bad-fraction", "0.2"]) == 0
    out = capsys.readouterr().out
    assert all(str(path) in out for path in bad) and "2 of 12 images unreadable" in out


def test_eval_mode_fails_on_any_unreadable_image(spoilt, capsys):
    name, _ = spoilt
    assert main(["data", "check", name, "--eval", "--max-bad-fraction", "0.5"]) == 2
    assert "evaluation stops at the first unreadable image" in capsys.readouterr().err


def test_a_readable_set_passes(tiny_shapes, capsys):
    assert main(["data", "check", tiny_shapes["train"]]) == 0
    assert "0 of 12 images unreadable" in capsys.readouterr().out

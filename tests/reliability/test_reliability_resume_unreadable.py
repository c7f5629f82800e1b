"""Fail closed on resume: an unloadable checkpoint (corrupt, refused as unsafe, not a checkpoint)
is never overwritten. A run resumes from the newest checkpoint that loads and moves the newer,
unreadable ones aside (`NAME.unreadable-<n>`, logged); if checkpoints exist but none loads, it
stops with a one-line error listing each and why, before writing anything, unless `--fresh`."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import pytest
import torch

from fad.cli import main
from fad.errors import FadError
from fad.runtime.checkpoint import (
    find_resume_point,
    load_checkpoint,
    read_tensor_file,
    save_checkpoint,
)


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _unsafe(path: Path) -> None:
    torch.save({"model": {}, "x": _Payload()}, path)


def _not_a_checkpoint(path: Path) -> None:
    torch.save([torch.zeros(2)], path)


def _weights_file(path: Path) -> None:  # loads, but holds no optimizer or iteration
    torch.save({"model": {"w": torch.zeros(2)}}, path)


SPOIL = {
    "truncated": _truncate,
    "unsafe": _unsafe,
    "not_a_checkpoint": _not_a_checkpoint,
    "weights_file": _weights_file,
}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _train(shapes_config, opts, max_iter: int, *flags: str) -> int:
    args = ["train", "--config-file", str(shapes_config), *opts, "SOLVER.MAX_ITER", str(max_iter)]
    return main([*args, "--skip-test", *flags])


def _trained(shapes_config, opts, tmp_path: Path, monkeypatch) -> Path:
    """OUTPUT_DIR of a 2-iteration run: model_0000001.pth, model_final.pth (2), the pointer.
    The working folder is tmp_path, where an executed payload would leave `pwned`."""
    monkeypatch.chdir(tmp_path)
    assert _train(shapes_config, opts, 2) == 0
    return tmp_path / "out"


def _aside(out: Path, name: str) -> list[Path]:
    return sorted(out.glob(f"{name}.unreadable-*"))


def _resumable(iteration: int) -> dict:
    return {
        "model": {"w": torch.full((2,), float(iteration))},
        "optimizer": {},
        "scheduler": {},
        "iteration": iteration,
        "rng": {},
    }


@pytest.mark.parametrize("spoil", [*SPOIL, "garbled_pointer"])
def test_every_kind_of_unreadable_file_is_found_and_set_aside_byte_for_byte(spoil, tmp_path):
    save_checkpoint(tmp_path, "model_0000001.pth", _resumable(1))
    save_checkpoint(tmp_path, "model_0000002.pth", _resumable(2))
    spoilt = tmp_path / ("last_checkpoint" if spoil == "garbled_pointer" else "model_0000002.pth")
    if spoil == "garbled_pointer":
        spoilt.write_bytes(b"\xff\xfe\x00 not text")
    else:
        SPOIL[spoil](spoilt)
    before = _sha(spoilt)
    point = find_resume_point(tmp_path)
    expected = 1 if spoil != "garbled_pointer" else 2
    assert point.checkpoint["iteration"] == expected
    assert [path for path, _ in point.unreadable] == [spoilt]
    assert spoilt.exists()  # reading writes nothing
    point.set_aside()
    (aside,) = _aside(tmp_path, spoilt.name)
    assert _sha(aside) == before and not spoilt.exists()
    assert not (tmp_path / "pwned").exists()


@pytest.mark.slow
def test_unloadable_newest_checkpoint_is_moved_aside_and_the_run_resumes_from_the_one_before(
    shapes_config, fast_opts, tmp_path, monkeypatch
):
    out = _trained(shapes_config, fast_opts, tmp_path, monkeypatch)
    _truncate(out / "model_final.pth")
    spoilt = _sha(out / "model_final.pth")
    assert _train(shapes_config, fast_opts, 3) == 0
    (aside,) = _aside(out, "model_final.pth")
    assert _sha(aside) == spoilt  # the unreadable file is kept, byte for byte
    log = (out / "log.txt").read_text()
    assert f"moved unreadable checkpoint {out / 'model_final.pth'} aside to {aside}" in log
    assert f"resuming from {out / 'model_0000001.pth'} at iteration 1" in log
    assert load_checkpoint(out / "model_final.pth")["iteration"] == 3
    assert not (tmp_path / "pwned").exists()


@pytest.mark.slow
def test_no_loadable_checkpoint_stops_in_one_line_listing_each_and_writes_nothing(
    shapes_config, fast_opts, tmp_path, capsys, monkeypatch
):
    out = _trained(shapes_config, fast_opts, tmp_path, monkeypatch)
    _truncate(out / "model_final.pth")
    _unsafe(out / "model_0000001.pth")
    before = {p.name: _sha(p) for p in out.iterdir() if p.is_file()}
    capsys.readouterr()
    assert _train(shapes_config, fast_opts, 3) == 2
    err = capsys.readouterr().err
    assert err.startswith("fad train: error: ") and err.count("\n") == 1, err
    assert f"no checkpoint in {out} loads" in err and "--fresh" in err
    assert "model_final.pth (" in err and "model_0000001.pth (" in err
    assert "holds objects other than tensors" in err
    assert {p.name: _sha(p) for p in out.iterdir() if p.is_file()} == before  # nothing written
    assert not (tmp_path / "pwned").exists()


@pytest.mark.slow
def test_fresh_starts_from_zero_and_keeps_the_unreadable_files_aside(
    shapes_config, fast_opts, tmp_path, monkeypatch
):
    out = _trained(shapes_config, fast_opts, tmp_path, monkeypatch)
    _truncate(out / "model_final.pth")
    _truncate(out / "model_0000001.pth")
    spoilt = {name: _sha(out / name) for name in ("model_final.pth", "model_0000001.pth")}
    assert _train(shapes_config, fast_opts, 2, "--fresh") == 0
    for name, sha in spoilt.items():
        (aside,) = _aside(out, name)
        assert _sha(aside) == sha
    assert load_checkpoint(out / "model_final.pth")["iteration"] == 2
    assert "starting afresh (--fresh)" in (out / "log.txt").read_text()


@pytest.mark.slow
def test_fresh_refuses_to_overwrite_a_loadable_checkpoint(
    shapes_config, fast_opts, tmp_path, capsys
):
    out = tmp_path / "out"
    assert _train(shapes_config, fast_opts, 2) == 0
    before = _sha(out / "model_final.pth")
    capsys.readouterr()
    assert _train(shapes_config, fast_opts, 2, "--fresh") == 2
    err = capsys.readouterr().err
    assert "--fresh" in err and str(out / "model_final.pth") in err and err.count("\n") == 1
    assert _sha(out / "model_final.pth") == before


@pytest.mark.slow
def test_search_with_no_loadable_checkpoint_stops_before_writing(
    shapes_config, search_opts, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "model_0000003.pth").write_bytes(b"PK\x03\x04 not a whole zip file")
    (out / "last_checkpoint").write_text("model_0000003.pth\n")
    config = shapes_config.parent / "search_fad_R_18_FPN.yaml"
    opts = [*search_opts, "MODEL.FAD.NUM_NODES_BOX", "1", "MODEL.FAD.NUM_NODES_CLS", "1"]
    assert main(["search", "--config-file", str(config), *opts, "SOLVER.MAX_ITER", "2"]) == 2
    err = capsys.readouterr().err
    assert "model_0000003.pth (" in err and "--fresh" in err and err.count("\n") == 1
    assert sorted(p.name for p in out.iterdir()) == ["last_checkpoint", "model_0000003.pth"]


def test_refused_pickle_message_is_ours_and_never_suggests_disabling_the_check(tmp_path):
    path = tmp_path / "weights.pth"
    _unsafe(path)
    with pytest.raises(FadError) as err:
        read_tensor_file(path, "MODEL.WEIGHT")
    message = str(err.value)
    assert message == (
        f"MODEL.WEIGHT {path} holds objects other than tensors and plain data; "
        "refused for safety (fad never runs code from a weights file)"
    )
    with open(path, "wb") as f:  # a plain pickle, not a torch zip file
        pickle.dump({"x": _Payload()}, f)
    with pytest.raises(FadError) as err:
        read_tensor_file(path, "MODEL.WEIGHT")
    assert "weights_only" not in str(err.value) and "False" not in str(err.value)
    assert not (tmp_path / "pwned").exists()

"""Checkpoints: atomic, safe to load, skipped when corrupt, strict about mismatches."""

from __future__ import annotations

import os
import pickle
import random

import numpy as np
import pytest
import torch

from fad.errors import FadError
from fad.runtime import atomic
from fad.runtime.checkpoint import (
    find_resume_checkpoint,
    load_checkpoint,
    load_model_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


def _payload(iteration: int) -> dict:
    return {
        "model": {"w": torch.full((3,), float(iteration))},
        "iteration": iteration,
        "rng": rng_state(),
    }


def test_save_points_last_checkpoint_and_loads_weights_only(tmp_path):
    save_checkpoint(tmp_path, "model_0000002.pth", _payload(2))
    assert (tmp_path / "last_checkpoint").read_text().strip() == "model_0000002.pth"
    path, ckpt = find_resume_checkpoint(tmp_path)
    assert path.name == "model_0000002.pth" and ckpt["iteration"] == 2
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_truncated_newest_checkpoint_is_skipped_with_warning(tmp_path, caplog):
    save_checkpoint(tmp_path, "model_0000002.pth", _payload(2))
    save_checkpoint(tmp_path, "model_0000004.pth", _payload(4))
    data = (tmp_path / "model_0000004.pth").read_bytes()
    (tmp_path / "model_0000004.pth").write_bytes(data[: len(data) // 2])
    with caplog.at_level("WARNING", logger="fad"):
        path, ckpt = find_resume_checkpoint(tmp_path)
    assert path.name == "model_0000002.pth" and ckpt["iteration"] == 2
    assert "skipping unreadable checkpoint" in caplog.text and "model_0000004.pth" in caplog.text


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_malicious_pickle_is_refused_and_not_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "model_final.pth", "wb") as f:
        pickle.dump({"model": {}, "x": _Evil()}, f)
    with pytest.raises(FadError, match="cannot load checkpoint"):
        load_checkpoint(tmp_path / "model_final.pth")
    torch.save({"model": {}, "x": _Evil()}, tmp_path / "model_0000001.pth")
    with pytest.raises(FadError):
        load_checkpoint(tmp_path / "model_0000001.pth")
    assert not (tmp_path / "pwned").exists()


def test_failed_write_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, "model_final.pth", _payload(1))
    before = (tmp_path / "model_final.pth").read_bytes()

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", disk_full)
    with pytest.raises(FadError, match="No space left on device"):
        save_checkpoint(tmp_path, "model_final.pth", _payload(2))
    assert (tmp_path / "model_final.pth").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_mismatched_state_lists_missing_unexpected_and_shapes():
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    state = model.state_dict()
    state.pop("1.bias")
    state["extra"] = torch.zeros(1)
    state["0.weight"] = torch.zeros(5, 2)
    with pytest.raises(FadError) as err:
        load_model_state(model, state, "w.pth")
    message = str(err.value)
    assert "missing: 1.bias" in message and "unexpected: extra" in message
    assert "0.weight (5, 2) vs (3, 2)" in message


def test_rng_state_round_trip_through_a_safe_checkpoint(tmp_path):
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    save_checkpoint(tmp_path, "model_final.pth", {"model": {}, "rng": rng_state()})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(load_checkpoint(tmp_path / "model_final.pth")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected

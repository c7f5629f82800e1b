"""The checkpoint's layout has one owner (`RunCheckpoint`): its keys, its meta and version, the
search's part; a checkpoint of another kind of run is refused, naming the file."""

from __future__ import annotations

import pytest
import torch

from fad.errors import FadError
from fad.runtime.checkpoint import (
    RESUME_KEYS,
    SEARCH,
    TRAIN,
    CheckpointMeta,
    RunCheckpoint,
    SearchCheckpoint,
    load_checkpoint,
    save_checkpoint,
)
from fad.runtime.version import __version__


def _checkpoint(kind: str, **extra) -> RunCheckpoint:
    return RunCheckpoint(
        model={"w": torch.arange(3.0)},
        optimizer={"state": {}, "param_groups": [{"lr": 0.1, "params": [0]}]},
        scheduler={"last_epoch": 4},
        iteration=4,
        meta=CheckpointMeta(kind=kind, config="SEED: 1\n", class_names=("a", "b")),
        **extra,
    )


def test_a_training_checkpoint_holds_exactly_the_resume_keys_and_the_meta():
    payload = _checkpoint(TRAIN).to_payload()
    assert set(payload) == {*RESUME_KEYS, "meta"}
    assert payload["meta"]["fad_version"] == __version__
    scaled = _checkpoint(TRAIN, scaler={"scale": 2.0}).to_payload()
    assert set(scaled) - set(payload) == {"scaler"}


def test_a_search_checkpoint_adds_the_alpha_optimizer_history_and_method(tmp_path):
    search = SearchCheckpoint({"state": {}}, {"format": 1}, {"name": "darts", "tau": 1.5})
    path = save_checkpoint(
        tmp_path, "model_0000004.pth", _checkpoint(SEARCH, search=search).to_payload()
    )
    data = load_checkpoint(path)
    assert set(data) - {*RESUME_KEYS, "meta"} == {
        "alpha_optimizer",
        "alpha_history",
        "search_method",
    }
    read = RunCheckpoint.from_payload(data, str(path), SEARCH)
    assert read.search == search and read.iteration == 4 and read.meta.kind == SEARCH
    assert torch.equal(read.model["w"], torch.arange(3.0))


def test_a_search_checkpoint_from_before_search_methods_has_no_method_state():
    payload = _checkpoint(SEARCH, search=SearchCheckpoint({}, {}, None)).to_payload()
    assert "search_method" not in payload
    assert RunCheckpoint.from_payload(payload, "old.pth", SEARCH).search.method is None


@pytest.mark.parametrize(
    ("stored", "search", "wanted", "message"),
    [
        (SEARCH, SearchCheckpoint({}, {}), TRAIN, "x.pth is a search checkpoint, not a train one"),
        (TRAIN, None, SEARCH, "x.pth is a train checkpoint, not a search one"),
        ("", None, SEARCH, "x.pth is a train checkpoint, not a search one"),
        (SEARCH, None, SEARCH, "x.pth: a search checkpoint without alpha_history"),
    ],
)
def test_a_checkpoint_of_another_kind_is_refused_naming_the_file(stored, search, wanted, message):
    payload = _checkpoint(stored, search=search).to_payload()
    if search is None and stored == SEARCH:
        payload["alpha_optimizer"] = {}  # half a search: no alpha history
    with pytest.raises(FadError, match=message):
        RunCheckpoint.from_payload(payload, "x.pth", wanted)


def test_a_checkpoint_without_a_kind_resumes_a_training():
    payload = _checkpoint(TRAIN).to_payload()
    del payload["meta"]
    read = RunCheckpoint.from_payload(payload, "old.pth", TRAIN)
    assert read.meta.kind == "" and read.meta.fad_version == ""
    assert read.iteration == 4 and read.scaler is None and read.search is None

"""What a search writes at a checkpoint; genotype.log is replaced atomically, never half-written."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

import fad.search_space.genotype as genotype_module
from fad.errors import FadError
from fad.search.history import AlphaHistory
from fad.search.outputs import write_search_outputs
from fad.search_space.genotype import read_genotype_file
from fad.search_space.towers import CellTowerSpec, TowerSpec, alphas, build_towers


def _model() -> nn.Module:
    torch.manual_seed(0)
    tower = CellTowerSpec(num_cells=1, num_nodes=2, edge_channels=32)
    box, cls = build_towers(TowerSpec(mode="search", channels=32, box=tower, cls=tower))
    return nn.ModuleDict({"box": box, "cls": cls})


def _write(folder, model, iteration):
    history = AlphaHistory.for_model(model)
    history.record(model, iteration, checkpoint=True)
    return write_search_outputs(folder, model, history, iteration)


def test_outputs_at_a_checkpoint(tmp_path):
    model = _model()
    genotypes = _write(tmp_path, model, 40)
    assert read_genotype_file(tmp_path / "genotype.log") == genotypes
    assert (tmp_path / "plots" / "box" / "iter_0000040.gv").is_file()
    assert (tmp_path / "plots" / "cls" / "iter_0000040.png").stat().st_size > 0
    assert (tmp_path / "plots" / "alpha_history_cls.svg").stat().st_size > 0
    assert "== iteration 40 ==" in (tmp_path / "alphas.log").read_text()
    assert (tmp_path / "alpha_history.json").is_file()


def test_genotype_log_is_never_half_written(tmp_path, monkeypatch):
    model = _model()
    _write(tmp_path, model, 1)
    before = (tmp_path / "genotype.log").read_bytes()
    with torch.no_grad():
        for alpha in alphas(model):
            alpha.copy_(torch.randn(alpha.shape))  # a different genotype
    written = []

    def crash(fd):  # the new text is in the temp file; the process dies before the rename
        written.append(os.path.getsize(f"/proc/self/fd/{fd}"))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(genotype_module.os, "fsync", crash)
    with pytest.raises(FadError, match="No space left on device"):
        _write(tmp_path, model, 2)
    assert written and written[0] > 0
    assert (tmp_path / "genotype.log").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "alpha_history.json",
        "alphas.log",
        "genotype.log",
        "plots",
    ]

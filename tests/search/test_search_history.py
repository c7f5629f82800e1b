"""Alpha history (snapshots, checkpoint round trip, logs), its plot, and the data streams."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from fad.errors import FadError
from fad.search.convergence import entropy
from fad.search.history import AlphaHistory, edge_labels
from fad.search_space.genotype import parse_genotype
from fad.search_space.ops import space_ops
from fad.search_space.towers import CellTowerSpec, TowerSpec, alphas, build_towers
from fad.viz.alpha_plot import plot_alpha_history


def _towers() -> nn.Module:
    torch.manual_seed(0)
    tower = CellTowerSpec(num_cells=1, num_nodes=3, edge_channels=32)
    box, cls = build_towers(TowerSpec(mode="search", channels=32, box=tower, cls=tower))
    return nn.ModuleDict({"box": box, "cls": cls})


def test_edge_labels_follow_the_alpha_rows():
    assert edge_labels(2) == [
        "node 0 <- c_{k-2}",
        "node 0 <- c_{k-1}",
        "node 1 <- c_{k-2}",
        "node 1 <- c_{k-1}",
        "node 1 <- node 0",
    ]
    assert len(edge_labels(3)) == 2 + 3 + 4


def test_mean_entropy_is_log_n_when_uniform_and_zero_when_decided():
    assert entropy([0.25] * 4) == pytest.approx(torch.log(torch.tensor(4.0)))
    assert entropy([1.0, 0.0, 0.0]) == 0.0


def test_snapshots_hold_softmaxed_alphas_and_genotypes():
    model = _towers()
    history = AlphaHistory.for_model(model)
    history.record(model, 0, checkpoint=True)
    with torch.no_grad():
        alphas(model)[0][0, 3] += 5.0  # box tower, node 0, edge from c_{k-2}: op 3 wins
    history.record(model, 20)
    first, second = history.snapshots
    assert len(second["weights"]["box"]) == 9 and len(second["weights"]["box"][0]) == 11
    assert sum(second["weights"]["box"][0]) == pytest.approx(1.0)
    assert max(second["weights"]["box"][0]) == second["weights"]["box"][0][3]
    parse_genotype(first["genotypes"]["box"], num_nodes=3)
    assert parse_genotype(second["genotypes"]["box"]).normal[0][0] == (space_ops("released")[3], 0)
    assert first["weights"]["box"][0][3] < 0.1 < second["weights"]["box"][0][3]


def test_recording_an_iteration_again_replaces_it_and_truncate_drops_later_ones():
    model = _towers()
    history = AlphaHistory.for_model(model)
    for iteration in (0, 20, 40):
        history.record(model, iteration)
    with torch.no_grad():
        alphas(model)[1].add_(1.0)
    history.record(model, 20, checkpoint=True)
    assert [s["iteration"] for s in history.snapshots] == [0, 20, 40]
    assert history.snapshots[1]["checkpoint"]
    history.truncate(20)
    assert [s["iteration"] for s in history.snapshots] == [0, 20]


def test_history_survives_a_weights_only_checkpoint_and_json(tmp_path):
    model = _towers()
    history = AlphaHistory.for_model(model)
    history.record(model, 0, checkpoint=True)
    history.record(model, 5)
    torch.save({"alpha_history": history.state_dict()}, tmp_path / "c.pth")
    loaded = torch.load(tmp_path / "c.pth", weights_only=True)["alpha_history"]
    again = AlphaHistory.from_state_dict(loaded)
    assert again.state_dict() == history.state_dict()
    history.write_json(tmp_path / "h.json")
    assert json.loads((tmp_path / "h.json").read_text()) == history.state_dict()
    with pytest.raises(FadError, match="unknown format"):
        AlphaHistory.from_state_dict({"format": 99})


def test_alphas_log_shows_checkpoint_snapshots_only(tmp_path):
    model = _towers()
    history = AlphaHistory.for_model(model)
    history.record(model, 0, checkpoint=True)
    history.record(model, 20)
    history.write_log(tmp_path / "alphas.log")
    text = (tmp_path / "alphas.log").read_text()
    assert "== iteration 0 ==" in text and "iteration 20" not in text
    assert "box genotype: Genotype(" in text and "cls entropy 2.398/2.398 nats" in text
    assert "NEAR UNIFORM" in text and "  kept: node 0 <- " in text
    assert "node 2 <- node 1" in text


def test_alpha_plot_writes_png_and_svg(tmp_path):
    model = _towers()
    history = AlphaHistory.for_model(model)
    for iteration in range(3):
        with torch.no_grad():
            alphas(model)[0].add_(0.1 * iteration)
        history.record(model, iteration * 10)
    written = plot_alpha_history(history.state_dict(), "box", tmp_path / "alpha_box")
    assert [p.suffix for p in written] == [".png", ".svg"]
    assert written[0].read_bytes().startswith(b"\x89PNG")
    assert b"<svg" in written[1].read_bytes()[:500]
    assert not list(tmp_path.glob(".*.tmp"))


def test_stability_is_the_share_of_final_edges_unchanged_over_the_window():
    model = _towers()
    history = AlphaHistory.for_model(model)
    with torch.no_grad():
        for alpha in alphas(model):
            alpha.normal_(std=1.0)  # a decided cell: every node has two clear edges
    history.record(model, 0)
    history.record(model, 20)
    assert history.stability(window=100)["share_unchanged"] == 1.0
    with torch.no_grad():  # node 0 of the box tower: a new best op on the edge from c_{k-2}
        alphas(model)[0][0, 9] += 50.0
    history.record(model, 40)
    edges = 2 * 2 * 3  # two towers, 3 nodes, 2 edges each
    stable = history.stability(window=100)
    assert stable["share_unchanged"] == pytest.approx((edges - 1) / edges)
    assert stable["since"] == 0 and stable["snapshots"] == 3
    assert history.stability(window=0)["share_unchanged"] == 1.0  # only the last snapshot

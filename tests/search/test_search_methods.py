"""Every search method end to end on a tiny set: the alphas move, a resumed run is bit-identical
to an uninterrupted one, the method is checked against its supernet before anything is written,
and a new method plugs in through one registry line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from scratch_search import SCRATCH_SEARCH

from fad.config import load_config
from fad.errors import FadError
from fad.search import methods, searcher
from fad.search.methods import METHODS, SearchMethod, method_class
from fad.search_space.relaxation import softmax_relaxation

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "shapes" / "search_fad_R_18_FPN.yaml"
TINY = [
    "MODEL.DEVICE", "cpu",
    "MODEL.RESNETS.BACKBONE_OUT_CHANNELS", "32",
    "MODEL.FAD.NUM_CHANNELS_BOX", "32",
    "MODEL.FAD.NUM_CHANNELS_CLS", "32",
    "MODEL.FAD.NUM_NODES_BOX", "2",
    "MODEL.FAD.NUM_NODES_CLS", "2",
    "INPUT.MIN_SIZE_TRAIN", "(48, 64)",
    "INPUT.MAX_SIZE_TRAIN", "64",
    "SOLVER.IMS_PER_BATCH", "2",
    "SOLVER.WARMUP_ITERS", "1",
    "SOLVER.MAX_ITER", "3",
    "SOLVER.CHECKPOINT_PERIOD", "2",
    "SOLVER.SEARCH.BASE_LR_ALPHA", "0.05",
    "DATALOADER.NUM_WORKERS", "0",
    *SCRATCH_SEARCH,
    "MODEL.FCOS.NUM_CLASSES", "6",
]  # fmt: skip
METHOD_OPTS = {
    "darts_1st": [],
    "darts_2nd": ["SOLVER.SEARCH.FIRST_ORDER", "False", "SOLVER.OPTIMIZER", "SGD"],
    "gdas": ["SOLVER.SEARCH.METHOD", "gdas"],
    "pcdarts": [
        "SOLVER.SEARCH.METHOD", "pcdarts",
        "MODEL.FAD.PARTIAL_CHANNELS", "4",
        "MODEL.FAD.EDGE_NORMALIZATION", "True",
    ],
}  # fmt: skip
pytestmark = pytest.mark.usefixtures("single_thread")


def _search(tiny_shapes, out: Path, *extra: str) -> dict:
    opts = [*TINY, "DATASETS.TRAIN", f"('{tiny_shapes['train']}',)", "OUTPUT_DIR", str(out)]
    return searcher.run_search(load_config(str(CONFIG), [*opts, *extra]))


def _final(out: Path) -> dict:
    return torch.load(out / "model_final.pth", weights_only=True)


ONE_LEVEL = {
    "darts_1st one-level": ["SOLVER.SEARCH.ONE_LEVEL", "True"],
    "gdas one-level": ["SOLVER.SEARCH.METHOD", "gdas", "SOLVER.SEARCH.ONE_LEVEL", "True"],
    "darts_1st one-level entropy 2": [
        "SOLVER.SEARCH.ONE_LEVEL", "True", "SOLVER.SEARCH.ENTROPY_WEIGHT", "2.0",
    ],
}  # fmt: skip
METHOD_OPTS.update(ONE_LEVEL)


def test_every_registered_method_is_tested():
    assert set(METHODS) <= set(METHOD_OPTS)


@pytest.mark.parametrize("name", sorted(METHOD_OPTS))
def test_each_method_moves_the_alphas_and_resumes_bit_identically(
    name, tiny_shapes, tmp_path, monkeypatch
):
    report = _search(tiny_shapes, tmp_path / "full", *METHOD_OPTS[name])
    assert report["method"] == name
    full = _final(tmp_path / "full")
    method = name.split()[0]
    start = torch.load(tmp_path / "full" / "model_0000002.pth", weights_only=True)
    arch = [k for k in full["model"] if ".alphas." in k or ".betas." in k]
    assert any(".betas." in k for k in arch) == (method == "pcdarts")
    assert all(not torch.equal(full["model"][k], start["model"][k]) for k in arch), "stuck"
    assert full["search_method"]["name"] == method

    # killed after the checkpoint of iteration 2, then resumed
    real = searcher.make_search_step

    def dies_at_2(*args, **kwargs):
        step = real(*args, **kwargs)

        def failing(i, batch):
            if i == 2:
                raise RuntimeError("killed")
            return step(i, batch)

        return failing

    monkeypatch.setattr(searcher, "make_search_step", dies_at_2)
    with pytest.raises(RuntimeError, match="killed"):
        _search(tiny_shapes, tmp_path / "resumed", *METHOD_OPTS[name])
    monkeypatch.undo()
    report = _search(tiny_shapes, tmp_path / "resumed", *METHOD_OPTS[name])
    assert report["start_iteration"] == 2
    resumed = _final(tmp_path / "resumed")
    for key, value in full["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    genotypes = [(tmp_path / d / "genotype.log").read_text() for d in ("full", "resumed")]
    assert genotypes[0] == genotypes[1]


def test_a_method_is_checked_before_anything_is_written(tiny_shapes, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(FadError, match="'pcdarts' needs MODEL.FAD.PARTIAL_CHANNELS > 1"):
        _search(tiny_shapes, out, "SOLVER.SEARCH.METHOD", "pcdarts")
    with pytest.raises(FadError, match="unknown SOLVER.SEARCH.METHOD 'gdass'; valid: gdas"):
        _search(tiny_shapes, out, "SOLVER.SEARCH.METHOD", "gdass")
    with pytest.raises(FadError, match="'gdas' is first order"):
        _search(tiny_shapes, out, *METHOD_OPTS["darts_2nd"], *METHOD_OPTS["gdas"])
    assert not out.exists()


def test_a_search_resumed_with_another_method_is_refused(tiny_shapes, tmp_path):
    _search(tiny_shapes, tmp_path, "SOLVER.MAX_ITER", "2")
    with pytest.raises(FadError, match="method 'darts_1st', resumed as 'gdas'"):
        _search(tiny_shapes, tmp_path, *METHOD_OPTS["gdas"])


class Frozen(SearchMethod):
    """A toy method: the alphas never move, the towers mix by plain softmax."""

    name = "frozen"

    def alpha_step(self, alpha_batch, weight_batch, check):
        for tower in self.towers:
            tower.relaxation = softmax_relaxation
        return torch.zeros(())


def test_a_new_method_plugs_in_with_one_registry_line(tiny_shapes, tmp_path, monkeypatch):
    monkeypatch.setitem(methods.METHODS, "frozen", Frozen)
    assert method_class("frozen") is Frozen
    _search(tiny_shapes, tmp_path, "SOLVER.SEARCH.METHOD", "frozen")
    final, start = _final(tmp_path), torch.load(tmp_path / "model_0000002.pth", weights_only=True)
    alpha_keys = [k for k in final["model"] if ".alphas." in k]
    assert all(torch.equal(final["model"][k], start["model"][k]) for k in alpha_keys)
    assert final["search_method"] == {"name": "frozen"}


@pytest.mark.parametrize("one_level", ["False", "True"])
def test_a_budgeted_search_reports_its_cost_and_is_pushed_to_cheaper_ops(
    tiny_shapes, tmp_path, one_level
):
    level = ["SOLVER.SEARCH.ONE_LEVEL", one_level]
    tight = _search(tiny_shapes, tmp_path / "tight", *level, "SOLVER.SEARCH.COST_BUDGET", "0.001")
    loose = _search(tiny_shapes, tmp_path / "loose", *level, "SOLVER.SEARCH.COST_BUDGET", "1000")
    cost = tight["cost"]
    assert cost["budget_gflops"] == 0.001
    assert cost["genotype_gflops"] > cost["budget_gflops"] and cost["expected_gflops"] > 0
    # the same seed and data: only the penalty differs, and it lowers the expected cost
    assert cost["expected_gflops"] < loose["cost"]["expected_gflops"]
    if one_level == "False":
        assert _search(tiny_shapes, tmp_path / "free")["cost"] is None

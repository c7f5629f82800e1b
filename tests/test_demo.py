"""`fad demo` end to end on a tiny shapes set: search -> train both heads -> report."""

from __future__ import annotations

import json

import pytest

from fad.cli import main
from fad.demo import FAD_ROW, FCOS_ROW


@pytest.mark.slow
def test_demo_runs_the_whole_pipeline(tiny_opts, tmp_path, capsys):
    opts = [o for o in tiny_opts]
    i = opts.index("OUTPUT_DIR")
    del opts[i : i + 2]
    out = tmp_path / "demo"
    tiny = ["SOLVER.MAX_ITER", "2", "SOLVER.SEARCH.WARMUP_ITERS", "1"]
    assert main(["demo", "--out", str(out), *opts, *tiny]) == 0
    report = (out / "demo_report.md").read_text()
    assert "| FCOS (standard head) |" in report and "| FAD (searched head) |" in report
    assert "Genotype(normal=[[" in report
    for role in ("box", "cls"):  # the genotype pictures the report shows exist
        assert f"(search/plots/alpha_history_{role}.png)" in report
        assert (out / "search" / "plots" / f"alpha_history_{role}.png").is_file()
    assert (out / "search" / "genotype.log").is_file()
    assert (out / "fad" / "model_final.pth").is_file() and (
        out / "fcos" / "model_final.pth"
    ).is_file()
    assert len(list((out / "pictures" / "fad").glob("*.jpg"))) == 4
    assert "head params" in capsys.readouterr().out
    saved = json.loads((out / "demo_report.json").read_text())
    assert saved["seed"] == 0 and set(saved["rows"]) == {FCOS_ROW, FAD_ROW}
    test_set = opts[opts.index("DATASETS.TEST") + 1].strip("()',")
    assert saved["test_set"] == test_set and f"COCO AP on {test_set}." in report
    assert 0.0 <= saved["rows"][FAD_ROW]["AP"] <= 1.0 and saved["search_seconds"] > 0
    assert "One seed is no verdict" in report and "--seeds 0,1,2 --random 5" in report
    assert "## Search: darts_1st one-level, 2 iterations (1 alpha steps)" in report
    assert "| box |" in report and "near uniform" in report  # one alpha step decides nothing
    assert set(saved["stages"]) == {"backbone", "search", "fcos", "fad", "report"}
    assert all(s["peak_rss_mib"] > 50 and s["seconds"] > 0 for s in saved["stages"].values())
    assert "| search |" in report and "MiB |" in report


def test_a_stored_backbone_is_reused_only_with_the_same_resolved_config(tmp_path, monkeypatch):
    from fad.config import load_config
    from fad.demo import BACKBONE_JSON, BACKBONE_SEED, CONFIGS, packaged_config, pretrain_backbone
    from fad.errors import FadError

    monkeypatch.setattr("fad.demo.run_training", lambda cfg: pytest.fail("trained again"))
    folder = tmp_path / "backbone"
    folder.mkdir()
    overrides = ["SEED", str(BACKBONE_SEED), "OUTPUT_DIR", str(folder)]
    config = load_config(packaged_config(CONFIGS["backbone"]), overrides).dump()
    record = {"opts": [], "config": config, "weights": "w.pth", "coco": {}, "seconds": 1.0}
    (folder / BACKBONE_JSON).write_text(json.dumps(record))
    assert pretrain_backbone(tmp_path, [])["weights"] == "w.pth"
    stale = {**record, "config": config.replace("MAX_ITER: 300", "MAX_ITER: 600")}
    assert stale != record
    (folder / BACKBONE_JSON).write_text(json.dumps(stale))
    with pytest.raises(FadError, match="another stage-0 config"):
        pretrain_backbone(tmp_path, [])
    with pytest.raises(FadError, match="with the overrides"):
        pretrain_backbone(tmp_path, ["SOLVER.MAX_ITER", "5"])
    # a record from before a key existed: reused while the key is at its default
    older = {**record, "config": config.replace("\n    FEATURE_CACHE_MB: 0\n", "\n")}
    assert older != record
    (folder / BACKBONE_JSON).write_text(json.dumps(older))
    assert pretrain_backbone(tmp_path, [])["weights"] == "w.pth"
    monkeypatch.setattr("fad.demo._defaults", lambda: {"MODEL": {"BACKBONE": {}}})
    with pytest.raises(FadError, match="another stage-0 config"):
        pretrain_backbone(tmp_path, [])


def test_head_cost_is_the_heads_module_cost(shapes_config):
    import torch

    from fad.config import load_config
    from fad.demo import head_cost
    from fad.modeling.build import build_detector
    from fad.modeling.cost import count_parameters, module_cost
    from fad.modeling.speed import set_compute_path
    from fad.search_space.fused.path import FusedPath

    cfg = load_config(shapes_config, ["MODEL.RESNETS.BACKBONE_OUT_CHANNELS", "32"])
    model = build_detector(cfg, 5, load_weights=False).eval()
    cost = head_cost(model, (64, 96))
    with torch.no_grad():
        features = list(model.backbone(torch.zeros(1, 3, 64, 96)).values())
    assert cost["head_params"] == count_parameters(model.head) > 0
    assert cost["head_gflops"] * 1e9 == module_cost(model.head, features)[1] > 0
    assert cost["head_latency_ms"] > 0
    # on the fused path the FLOPs are still the modules' (not the canvas's borders), and the
    # towers stay fused
    set_compute_path(model, "fused")
    with torch.no_grad():
        canvas_flops = module_cost(model.head, features)[1]
    assert canvas_flops > cost["head_gflops"] * 1e9  # the borders the canvas computes
    assert head_cost(model, (64, 96))["head_gflops"] == cost["head_gflops"]
    assert isinstance(model.head.box_tower.compute_path, FusedPath)


def test_the_report_says_whether_the_genotype_settled_or_still_changed():
    from fad.demo import search_lines

    figures = {"mean_entropy": 1.5, "uniform_entropy": 2.3, "entropy_ratio": 0.65}
    figures |= {"min_top_over_uniform": 2.5, "converged": True, "near_uniform": False}
    search = {"method": "darts_1st", "iterations": 300, "warmup_iters": 60}
    search |= {"convergence": {"box": figures}, "cost": None}
    settled = "\n".join(search_lines({**search, "settled_since": 200}))
    assert "has not changed since iteration 200" in settled
    moving = "\n".join(search_lines({**search, "settled_since": 300}))
    assert "still changed at the last check (iteration 300)" in moving
    assert "has not changed" not in moving


def test_the_report_names_the_towers_read_off_near_uniform_weights():
    from fad.demo import search_lines

    def figures(near: bool) -> dict:
        return {"mean_entropy": 2.2, "uniform_entropy": 2.3, "entropy_ratio": 0.96,
                "min_top_over_uniform": 1.2, "converged": False, "near_uniform": near}  # fmt: skip

    search = {"method": "darts_1st", "iterations": 300, "warmup_iters": 60, "cost": None}
    one = "\n".join(
        search_lines({**search, "convergence": {"box": figures(True), "cls": figures(False)}})
    )
    assert "**The box genotype was read off near-uniform op weights" in one
    both = "\n".join(
        search_lines({**search, "convergence": {"box": figures(True), "cls": figures(True)}})
    )
    assert "**The box and cls genotypes were read off" in both
    none = "\n".join(search_lines({**search, "convergence": {"box": figures(False)}}))
    assert "near-uniform" not in none

"""The random control: the comparison's figures on known APs, and `fad study random` end to end
on a tiny set (real trainings of random genotypes, the paper's and a searched one)."""

from __future__ import annotations

import json

import pytest

from fad.cli import main
from fad.config import load_config
from fad.demo_seeds import random_control_lines
from fad.errors import FadError
from fad.search.budget import cost_model
from fad.search_space.genotype import parse_genotype
from fad.study_random import ADDED_KEYS, PAPER, compare, draw_genotypes, within_budget

pytestmark = pytest.mark.usefixtures("single_thread")


def _records(aps: list[float], paper: float) -> dict:
    records = {
        f"random_{i}": {"AP": ap, "AP50": ap, "head_gflops": 0.1} for i, ap in enumerate(aps)
    }
    records[PAPER] = {"AP": paper, "AP50": paper, "head_gflops": 0.1}
    return records


def test_compare_ranks_the_searched_heads_among_the_random_ones():
    c = compare(_records([0.60, 0.62, 0.64], paper=0.9), searched=[0.66, 0.61], standard=[0.5])
    assert c["random_mean"] == pytest.approx(0.62) and c["random_std"] == pytest.approx(0.02)
    assert c["searched_mean"] == pytest.approx(0.635) and c["ranks"] == [1, 3]
    assert c["improvement"] == pytest.approx(0.015)
    assert c["improvement_in_std"] == pytest.approx(0.75)
    assert not c["beats_random_by_one_std"] and c["paper_ap"] == 0.9  # the paper's: no random
    assert compare(_records([0.6, 0.62], 0.9), [0.7], [])["beats_random_by_one_std"]
    text = "\n".join(random_control_lines({"comparison": c, "records": {}, "training_seed": 0}))
    assert "does not beat the random mean by more than one standard deviation: +0.015 AP" in text


def test_compare_with_seeds_counts_each_genotype_by_its_mean_and_tests_the_genotype_effect():
    records = _records([0.0, 0.0, 0.0], paper=0.7)
    for record, aps in zip(records.values(), ([0.60, 0.62], [0.70, 0.72], [0.80, 0.82])):
        record.update(AP=sum(aps) / 2, AP_per_seed=aps, AP_std=0.014)
    c = compare(records, searched=[0.90, 0.88], standard=[])
    assert c["random_ap"] == pytest.approx([0.61, 0.71, 0.81])
    assert c["ranks"] == [1, 1] and c["beats_random_by_one_std"]
    effect = c["genotype_effect"]
    assert effect["genotypes"] == 3 and effect["seeds"] == 2  # the paper's is not a random one
    assert effect["seed_std"] == pytest.approx(0.01414, abs=1e-4)
    control = {"comparison": c, "records": records, "training_seed": 0, "training_seeds": [0, 1]}
    text = "\n".join(random_control_lines(control))
    assert "with seeds 0, 1 (mean)" in text and "Genotype vs training seed (3 random" in text
    assert "| random_1 | 0.710 ± 0.014 (0.700, 0.720) |" in text
    assert compare(_records([0.6, 0.62], 0.9), [0.7], [])["genotype_effect"] is None
    alone = compare(records, searched=[], standard=[])  # a study without a searched head
    assert alone["searched_mean"] is None and not alone["beats_random_by_one_std"]


def test_draws_are_fixed_and_follow_the_configured_nodes():
    first = draw_genotypes(3, {"box": 2, "cls": 3}, "released")
    assert [str(g) for pair in first for g in pair] == [
        str(g) for pair in draw_genotypes(3, {"box": 2, "cls": 3}, "released") for g in pair
    ]
    assert all(box.num_nodes == 2 and cls.num_nodes == 3 for box, cls in first)


def test_draws_within_a_budget_cost_at_most_the_budget_and_an_impossible_one_is_an_error(
    shapes_config,
):
    cfg = load_config(
        str(shapes_config.parent / "fad_imprv_R_18_FPN.yaml"),
        ["MODEL.WEIGHT", "", "MODEL.BACKBONE.FREEZE_FPN", "False"],
    )
    nodes = {"box": 3, "cls": 3}
    costs = cost_model(cfg, cfg.MODEL.FCOS.NUM_CLASSES - 1)
    gflops = [
        costs.of_genotypes(dict(zip(("box", "cls"), pair))) / 1e9
        for pair in draw_genotypes(20, nodes, "released")
    ]
    budget = sorted(gflops)[5]  # about a quarter of the space fits
    pairs = draw_genotypes(4, nodes, "released", accept=within_budget(cfg, budget))
    fitted = [costs.of_genotypes(dict(zip(("box", "cls"), p))) / 1e9 for p in pairs]
    assert len(fitted) == 4 and max(fitted) <= budget < max(gflops)
    with pytest.raises(FadError, match="within the budget"):
        draw_genotypes(2, nodes, "released", accept=within_budget(cfg, 1e-6))


def _study(tiny_opts: list[str], shapes_config, out) -> tuple[list[str], list[str]]:
    """Overrides for tiny trainings of one-cell FAD heads, and `fad study random` of 2 genotypes."""
    config = shapes_config.parent / "fad_imprv_R_18_FPN.yaml"
    opts = [
        *tiny_opts,
        "MODEL.WEIGHT", "",
        "MODEL.BACKBONE.FREEZE_FPN", "False",
        "MODEL.FAD.NUM_CELLS_BOX", "1",
        "MODEL.FAD.NUM_CELLS_CLS", "1",
        "SOLVER.MAX_ITER", "2",
        "MODEL.FCOS.INFERENCE_TH", "0.0",
    ]  # fmt: skip
    return opts, ["study", "random", "--config-file", str(config), "--num", "2", "--out", str(out)]


@pytest.mark.slow
def test_fad_study_random_trains_and_ranks_end_to_end(tiny_opts, shapes_config, tmp_path, capsys):
    out = tmp_path / "study"
    opts, args = _study(tiny_opts, shapes_config, out)
    assert main([*args, "--genotype", "alt", *opts]) == 0
    study = json.loads((out / "random_study.json").read_text())
    assert set(study["records"]) == {"random_0", "random_1", PAPER, "searched"}
    assert len(study["comparison"]["random_ap"]) == 2
    for name in ("random_0", "random_1"):
        genotypes = study["records"][name]["genotypes"]
        assert parse_genotype(genotypes["box"]).num_nodes == 3
        assert (out / name / "run" / "model_final.pth").is_file()
    assert (out / "random_control.png").stat().st_size > 0
    # a second run reads the finished trainings back instead of training them again
    before = (out / "random_0" / "result.json").stat().st_mtime_ns
    assert main([*args, "--genotype", "alt", *opts]) == 0
    assert (out / "random_0" / "result.json").stat().st_mtime_ns == before
    # ... but not one trained with another config: refused in one line naming it, nothing written
    assert main([*args, "--genotype", "alt", *opts, "SOLVER.BASE_LR", "0.001"]) == 2
    error = capsys.readouterr().err.strip()
    assert "random_0/result.json: trained with another" in error and "\n" not in error
    assert (out / "random_0" / "result.json").stat().st_mtime_ns == before


@pytest.mark.slow
def test_fad_study_random_with_seeds_trains_each_genotype_per_seed(
    tiny_opts, shapes_config, tmp_path, capsys
):
    out = tmp_path / "study"
    opts, args = _study(tiny_opts, shapes_config, out)
    assert main([*args, "--seeds", "3,4", *opts]) == 0
    study = json.loads((out / "random_study.json").read_text())
    assert study["training_seeds"] == [3, 4]
    for name in ("random_0", "random_1", "paper"):
        for seed in (3, 4):
            run = out / name / f"seed_{seed}" / "run"
            assert (run / "model_final.pth").is_file()
            assert load_config(str(run / "config.yaml")).SEED == seed
    record = study["records"]["random_0"]
    assert len(record["AP_per_seed"]) == 2 and record["seeds"] == [3, 4]
    assert study["comparison"]["genotype_effect"]["seeds"] == 2
    assert "Genotype vs training seed (2 random genotypes x 2 seeds)" in capsys.readouterr().out
    assert main([*args, "--seeds", "3,x", *opts]) == 2
    assert "--seeds '3,x': 'x' is not an integer seed" in capsys.readouterr().err


def _finished(folder, genotypes, digest: str) -> None:
    folder.mkdir(parents=True)
    box, cls = genotypes
    record = {"genotypes": {"box": str(box), "cls": str(cls)}, "config_sha256": digest, "AP": 0.5}
    (folder / "result.json").write_text(json.dumps(record))


def test_a_study_made_before_the_fused_optimizer_goes_on_only_with_the_loop(tmp_path):
    import hashlib

    from fad.search_space.genotype import PRESETS
    from fad.study_random import train_genotype

    genotypes = PRESETS["paper"]
    loop = load_config(None, ["SOLVER.FUSED_OPTIMIZER", "False"])
    # what fad's dump was before the key existed: the same text without its line
    added = [key.rpartition(".")[2] + ":" for key in ADDED_KEYS]
    old_dump = "\n".join(
        line for line in loop.dump().split("\n") if not any(a in line for a in added)
    )
    _finished(tmp_path / "old", genotypes, hashlib.sha256(old_dump.encode()).hexdigest())
    done = train_genotype(tmp_path / "old", genotypes, lambda folder: loop, (64, 64))
    assert done["AP"] == 0.5  # read back, not trained again
    fused = load_config(None, [])  # the default: fused kernels, another config than the record's
    with pytest.raises(FadError) as err:
        train_genotype(tmp_path / "old", genotypes, lambda folder: fused, (64, 64))
    message = str(err.value)
    assert "old/result.json: trained with another" in message and "\n" not in message
    assert "goes on with its value then: SOLVER.FUSED_OPTIMIZER False, " in message


def test_a_study_made_before_the_compile_mode_goes_on_with_the_fused_optimizer(tmp_path):
    import hashlib

    from fad.search_space.genotype import PRESETS
    from fad.study_random import train_genotype

    genotypes = PRESETS["paper"]
    fused = load_config(None, [])  # fused kernels (added first), compile mode at its default
    old_dump = "\n".join(line for line in fused.dump().split("\n") if "COMPILE_MODE:" not in line)
    _finished(tmp_path / "old", genotypes, hashlib.sha256(old_dump.encode()).hexdigest())
    done = train_genotype(tmp_path / "old", genotypes, lambda folder: fused, (64, 64))
    assert done["AP"] == 0.5  # read back, not trained again
    graphs = load_config(None, ["MODEL.COMPILE_MODE", "reduce-overhead"])
    with pytest.raises(FadError, match="trained with another"):
        train_genotype(tmp_path / "old", genotypes, lambda folder: graphs, (64, 64))

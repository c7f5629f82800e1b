"""`fad demo --seeds`: the summary over seeds (mean, spread, paired differences) and its reuse."""

from __future__ import annotations

import json

import pytest

from fad.cli import main
from fad.demo import AP_KEYS, FAD_ROW, FCOS_ROW, REPORT_JSON
from fad.demo_seeds import (
    add_random_control,
    parse_seeds,
    random_control_lines,
    render_study_markdown,
    summarize,
)
from fad.errors import FadError
from fad.search_space.genotype import PRESETS

CLS = str(PRESETS["paper"][1])


def _report(seed: int, fcos_ap: float, fad_ap: float, opts=()) -> dict:
    def row(ap: float) -> dict:
        return {**{k: ap for k in AP_KEYS}, "train_seconds": 60.0 * (1 + seed)}

    return {
        "seed": seed,
        "opts": list(opts),
        "rows": {FCOS_ROW: row(fcos_ap), FAD_ROW: row(fad_ap)},
        "search_seconds": 30.0,
        "total_seconds": 600.0 + seed,
        "genotypes": {"box": str(PRESETS["alt" if seed % 2 else "paper"][0]), "cls": CLS},
    }


def test_summary_gives_mean_sample_std_and_paired_differences():
    reports = {0: _report(0, 0.10, 0.12), 1: _report(1, 0.20, 0.19), 2: _report(2, 0.30, 0.33)}
    summary = summarize(reports)
    fcos = summary["heads"][FCOS_ROW]["AP"]
    assert fcos["mean"] == pytest.approx(0.20) and fcos["std"] == pytest.approx(0.10)
    assert (fcos["min"], fcos["max"]) == (0.10, 0.30)
    diff = summary["fad_minus_fcos"]["AP"]
    assert diff["per_seed"] == pytest.approx([0.02, -0.01, 0.03])
    assert diff["mean"] == pytest.approx(0.04 / 3)
    assert summary["fad_wins_ap"] == 2
    assert summary["distinct_genotypes"] == 2  # seeds 0 and 2 found the same pair
    text = render_study_markdown(summary)
    assert f"| {FCOS_ROW} | 0.200 ± 0.100 |" in text
    assert "| FAD - FCOS, paired | +0.013 ± 0.021 |" in text
    assert "higher AP in 2 of 3 seeds" in text
    assert "| 1 | 0.200 | 0.190 | -0.010 |" in text


def test_one_seed_has_zero_spread():
    summary = summarize({5: _report(5, 0.1, 0.2)})
    assert summary["heads"][FAD_ROW]["AP"]["std"] == 0.0 and summary["seeds"] == [5]


@pytest.mark.parametrize("text, culprit", [("0,x,2", "'x'"), ("1,1", "repeated"), ("", "''")])
def test_bad_seed_lists_are_one_line_errors(text, culprit):
    with pytest.raises(FadError, match=culprit):
        parse_seeds(text)


def test_finished_seeds_are_read_back_not_rerun(tmp_path, capsys):
    for seed, (a, b) in {0: (0.1, 0.2), 3: (0.3, 0.25)}.items():
        (tmp_path / f"seed_{seed}").mkdir()
        (tmp_path / f"seed_{seed}" / REPORT_JSON).write_text(json.dumps(_report(seed, a, b)))
    assert main(["demo", "--out", str(tmp_path), "--seeds", "0,3"]) == 0
    assert "higher AP in 1 of 2 seeds" in capsys.readouterr().out
    summary = json.loads((tmp_path / "seed_study.json").read_text())
    assert summary["seeds"] == [0, 3] and (tmp_path / "seed_study.md").is_file()


def test_the_seed_of_a_plain_demo_run_in_the_folder_is_reused(tmp_path, capsys, monkeypatch):
    (tmp_path / REPORT_JSON).write_text(json.dumps(_report(0, 0.1, 0.2)))
    (tmp_path / "seed_1").mkdir()
    (tmp_path / "seed_1" / REPORT_JSON).write_text(json.dumps(_report(1, 0.3, 0.25)))
    ran = []
    monkeypatch.setattr("fad.demo_seeds.run_demo", lambda out, opts, seed, **k: ran.append(seed))
    assert main(["demo", "--out", str(tmp_path), "--seeds", "0,1"]) == 0
    assert ran == [] and "higher AP in 1 of 2 seeds" in capsys.readouterr().out
    # another seed, or other overrides, are not that run: seed 0 reruns under other overrides
    monkeypatch.setattr(
        "fad.demo_seeds.run_demo",
        lambda out, opts, seed, **k: ran.append(seed) or _report(seed, 0.1, 0.2, opts),
    )
    assert main(["demo", "--out", str(tmp_path / "x"), "--seeds", "0"]) == 0
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / REPORT_JSON).write_text(json.dumps(_report(0, 0.1, 0.2)))
    assert main(["demo", "--out", str(tmp_path / "y"), "--seeds", "0", "SEED", "0"]) == 0
    assert ran == [0, 0]


def test_a_finished_seed_made_with_other_overrides_is_refused(tmp_path, capsys):
    (tmp_path / "seed_0").mkdir()
    report = _report(0, 0.1, 0.2, opts=["SOLVER.MAX_ITER", "5"])
    (tmp_path / "seed_0" / REPORT_JSON).write_text(json.dumps(report))
    assert main(["demo", "--out", str(tmp_path), "--seeds", "0", "SOLVER.MAX_ITER", "90"]) != 0
    err = capsys.readouterr().err
    assert "seed_0" in err and "'SOLVER.MAX_ITER', '5'" in err and "another --out" in err


def test_the_study_reports_the_paired_interval_and_its_verdict():
    reports = {s: _report(s, 0.50, 0.50 + d) for s, d in enumerate((0.02, 0.025, 0.03))}
    summary = summarize(reports)
    interval = summary["ap_interval"]
    assert interval["low"] > 0 and interval["mean"] == pytest.approx(0.025)
    assert "lies above 0, so FAD is better" in summary["verdict"]
    assert summary["verdict"] in render_study_markdown(summary)


def test_genotype_agreement_counts_shared_edges():
    from fad.demo_seeds import genotype_agreement

    paper = {"box": str(PRESETS["paper"][0]), "cls": str(PRESETS["paper"][1])}
    alt = {"box": str(PRESETS["alt"][0]), "cls": str(PRESETS["paper"][1])}  # same cls tower
    agreement = genotype_agreement([paper, paper, alt])
    # pairs (paper, paper): 12/12; (paper, alt) twice: the 6 cls edges and no box edge in common
    assert agreement["pairwise"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert agreement["all_seeds"] == pytest.approx(0.5)
    assert genotype_agreement([paper]) == {"pairwise": None, "all_seeds": None}


@pytest.mark.parametrize("every_seed", [False, True])
def test_the_demo_random_control_trains_with_the_first_seed_or_with_every_seed(
    every_seed, tmp_path, monkeypatch
):
    trained = []

    def fake_train(folder, genotypes, config, size):  # the trainer is pinned elsewhere
        cfg = config(folder / "run")
        trained.append((folder.relative_to(tmp_path / "random").parts[0], cfg.SEED))
        ap = 0.6 + 0.05 * (hash(str(genotypes[0])) % 3) + 0.01 * cfg.SEED
        record = {"genotypes": {}, "AP": ap, "AP50": ap, "AP75": ap, "train_seconds": 1.0}
        return {**record, "head_params": 1, "head_gflops": 0.3, "head_latency_ms": 1.0}

    monkeypatch.setattr("fad.study_random.train_genotype", fake_train)
    reports = {s: _report(s, 0.6, 0.62) for s in (3, 4)}
    control = add_random_control(tmp_path, [], reports, num=2, every_seed=every_seed)
    names = {"random_0", "random_1", "paper"}
    expected = {(n, s) for n in names for s in ((3, 4) if every_seed else (3,))}
    assert set(trained) == expected and len(trained) == len(expected)
    assert control["training_seeds"] == ([3, 4] if every_seed else [3])
    effect = control["comparison"]["genotype_effect"]
    assert (effect is not None) == every_seed
    text = "\n".join(random_control_lines(control))
    assert ("with seeds 3, 4 (mean)" in text) == every_seed
    assert ("Genotype vs training seed (2 random genotypes x 2 seeds)" in text) == every_seed


def test_random_every_seed_needs_random(tmp_path, capsys):
    argv = ["demo", "--out", str(tmp_path / "d"), "--seeds", "0,1", "--random-every-seed"]
    assert main(argv) == 2
    assert "--random-every-seed needs --random N" in capsys.readouterr().err

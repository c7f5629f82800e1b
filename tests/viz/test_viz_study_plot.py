"""The random control's picture: the reference band, and each random genotype's training seeds
when there are several."""

from __future__ import annotations

from fad.viz.study_plot import plot_study, study_figure

COMPARISON = {
    "random_ap": [0.60, 0.70],
    "random_mean": 0.65,
    "random_std": 0.07,
    "searched_ap": [0.66],
    "standard_ap": [0.5],
    "paper_ap": 0.68,
}


def _rings(figure) -> list:
    return [c for c in figure.axes[0].collections if c.get_label().endswith("training seeds")]


def test_one_seed_per_genotype_draws_no_seed_rings(tmp_path):
    figure = study_figure(COMPARISON, "t")
    assert _rings(figure) == []
    assert [p.suffix for p in plot_study(COMPARISON, tmp_path / "s", "t")] == [".png", ".svg"]


def test_several_seeds_draw_each_genotypes_seeds_and_label_them_once():
    comparison = {**COMPARISON, "random_ap_per_seed": [[0.59, 0.61], [0.65, 0.75]]}
    figure = study_figure(comparison, "t")
    assert len(_rings(figure)) == 1  # the legend names them once
    ax = figure.axes[0]
    ys = sorted(y for c in ax.collections for _, y in c.get_offsets() if y in (0.59, 0.75))
    assert ys == [0.59, 0.75]  # each seed's AP is drawn
    lows, highs = ax.get_ylim()
    assert lows <= 0.59 and highs >= 0.75

"""Cell pictures exist on any machine: graphviz's layout where `dot` is installed, matplotlib's
where it is not."""

from __future__ import annotations

import pytest
from PIL import Image

from fad.search_space.genotype import PRESETS
from fad.viz import genotype_plot


def test_without_dot_the_cell_is_drawn_with_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setattr(genotype_plot, "dot_available", lambda: False)
    written = genotype_plot.plot_genotype(PRESETS["paper"][0], tmp_path / "box", "box cell")
    assert [p.name for p in written] == ["box.gv", "box.png", "box.svg"]
    with Image.open(tmp_path / "box.png") as picture:
        assert picture.size[0] > 400 and picture.size[1] > 200
    svg = (tmp_path / "box.svg").read_text()
    for op, _ in PRESETS["paper"][0].normal[0]:  # every edge is labelled with its op
        assert op in svg
    assert "digraph" in (tmp_path / "box.gv").read_text()


@pytest.mark.skipif(not genotype_plot.dot_available(), reason="graphviz's dot is not installed")
def test_with_dot_graphviz_draws_the_cell(tmp_path):
    genotype_plot.plot_genotype(PRESETS["alt"][1], tmp_path / "cls", "cls cell")
    assert (tmp_path / "cls.svg").read_text().lstrip().startswith("<?xml")
    assert (tmp_path / "cls.png").stat().st_size > 0

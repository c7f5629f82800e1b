"""`fad genotype show|plot` through the CLI entry point."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fad.cli import main
from fad.search_space.genotype import PRESETS, write_genotype_file


def test_show_paper_prints_lines_parameters_and_flops(capsys: pytest.CaptureFixture) -> None:
    assert main(["genotype", "show", "paper"]) == 0
    out = capsys.readouterr().out
    assert f"box tower: {PRESETS['paper'][0]}" in out
    assert f"cls tower: {PRESETS['paper'][1]}" in out
    assert "1,935,552 parameters" in out and "1,644,288 parameters" in out
    assert "all cells: 3,579,840 parameters" in out
    assert "GFLOPs on 100x152" in out and "1 multiply-add = 2 FLOPs" in out


def _gflops(out: str, prefix: str) -> float:
    """The GFLOPs figure of the first output line starting with ``prefix``."""
    line = next(line for line in out.splitlines() if line.strip().startswith(prefix))
    return float(line.split(", ")[-1].split()[0])


def test_show_file_with_options(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "genotype.log"
    write_genotype_file(path, *PRESETS["alt"])
    assert main(["genotype", "show", str(path), "--channels", "128", "--cells", "1"]) == 0
    out = capsys.readouterr().out
    assert f"box tower: {PRESETS['alt'][0]}" in out
    assert out.count("1 cells, C=128, W=256") == 2


def test_show_flops_scale_with_size(capsys: pytest.CaptureFixture) -> None:
    main(["genotype", "show", "paper", "--size", "10x10"])
    small = _gflops(capsys.readouterr().out, "all cells")
    main(["genotype", "show", "paper", "--size", "20x20"])
    large = _gflops(capsys.readouterr().out, "all cells")
    assert small > 0
    assert large == pytest.approx(4 * small, rel=1e-3)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["genotype", "show", "papr"], "neither a genotype preset"),
        (["genotype", "show", "paper", "--size", "100"], "--size '100'"),
        (["genotype", "show", "paper", "--channels", "100"], "multiple of 32"),
    ],
)
def test_show_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_plot_writes_sources_and_pictures(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "plots"
    assert main(["genotype", "plot", "alt", "--out", str(out)]) == 0
    source = (out / "box_cell.gv").read_text()
    assert "c_{k-2}" in source and "c_{k}" in source
    assert 'label="std_conv_3x3_x2+dil_conv_3x3"' in source
    assert (out / "cls_cell.gv").exists()
    if shutil.which("dot") is None:
        assert "apt-get install graphviz" in capsys.readouterr().out
        pytest.skip("graphviz's dot is not installed")
    for role in ("box", "cls"):
        assert (out / f"{role}_cell.png").read_bytes().startswith(b"\x89PNG")
        assert "<svg" in (out / f"{role}_cell.svg").read_text()


def test_plot_without_dot_draws_with_matplotlib_and_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr("fad.viz.genotype_plot.shutil.which", lambda name: None)
    assert main(["genotype", "plot", "paper", "--out", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"{r}_cell.{s}" for r in ("box", "cls") for s in ("gv", "png", "svg")]
    assert (tmp_path / "box_cell.png").read_bytes().startswith(b"\x89PNG")
    assert "apt-get install graphviz" in capsys.readouterr().out


def test_cells_cost_counts_two_flops_per_multiply_add() -> None:
    from torch import nn

    from fad.commands.genotype import cells_cost, fixed_tower

    tower = fixed_tower(PRESETS["paper"][1], "cls", 96, 2, 256)
    params, flops = cells_cost(tower, 10, 12)
    assert params == 1_644_288
    conv_weights = sum(m.weight.numel() for m in tower.cells.modules() if isinstance(m, nn.Conv2d))
    assert flops == 2 * 10 * 12 * conv_weights

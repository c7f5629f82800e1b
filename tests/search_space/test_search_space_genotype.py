"""Genotypes: the original text format, round trips, every malformed case, presets, derivation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fad.errors import FadError
from fad.search_space.genotype import (
    PRESETS,
    Genotype,
    derive_genotype,
    load_genotypes,
    parse_genotype,
    read_genotype_file,
    write_genotype_file,
)
from fad.search_space.ops import SPACES

PAPER_BOX = (
    "Genotype(normal=[[('sinSep_conv_3x3_x3', 0), ('std_conv_3x3_x3', 1)], "
    "[('std_conv_3x3', 2), ('sinSep_conv_3x3+dil_conv_3x3', 1)], "
    "[('sinSep_conv_3x3_x2', 2), ('std_conv_3x3_x2', 3)]], normal_concat=range(2, 5))"
)
ALT_CLS = (
    "Genotype(normal=[[('std_conv_3x3_x3', 1), ('sinSep_conv_3x3+dil_conv_3x3', 0)], "
    "[('sinSep_conv_3x3', 0), ('sinSep_conv_3x3+dil_conv_3x3', 2)], "
    "[('std_conv_3x3', 1), ('std_conv_3x3_x3', 0)]], normal_concat=range(2, 5))"
)
GOOD_NODE = "[('std_conv_3x3', 0), ('std_conv_3x3', 1)]"


def _line(nodes: str, concat: str = "range(2, 5)") -> str:
    return f"Genotype(normal={nodes}, normal_concat={concat})"


def test_str_is_the_original_format() -> None:
    genotype = parse_genotype(PAPER_BOX)
    assert str(genotype) == PAPER_BOX == repr(genotype)
    assert genotype.normal[0] == [("sinSep_conv_3x3_x3", 0), ("std_conv_3x3_x3", 1)]
    assert genotype.normal_concat == range(2, 5) and genotype.num_nodes == 3


def test_presets_are_the_seed_readme_lines() -> None:
    assert str(PRESETS["paper"][0]) == PAPER_BOX
    assert str(PRESETS["alt"][1]) == ALT_CLS
    assert load_genotypes("alt") == {"box": PRESETS["alt"][0], "cls": PRESETS["alt"][1]}


def test_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "genotype.log"
    box, cls = PRESETS["paper"]
    write_genotype_file(path, box, cls)
    assert path.read_text().splitlines() == [str(box), str(cls)]
    assert read_genotype_file(path) == {"box": box, "cls": cls}
    assert load_genotypes(path) == {"box": box, "cls": cls}
    assert [p.name for p in tmp_path.iterdir()] == ["genotype.log"]  # no temp file left


def test_file_skips_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "g.log"
    path.write_text(f"# box, then cls\n\n{PAPER_BOX}\n  # cls\n{ALT_CLS}\n\n")
    assert {k: str(v) for k, v in read_genotype_file(path).items()} == {
        "box": PAPER_BOX,
        "cls": ALT_CLS,
    }
    path.write_text(f"{PAPER_BOX}\n")
    assert list(read_genotype_file(path)) == ["box"]


MALFORMED = {
    "forward index": (
        _line(f"[{GOOD_NODE}, [('std_conv_3x3', 3), ('std_conv_3x3', 0)], {GOOD_NODE}]"),
        "node 1 edge ('std_conv_3x3', 3) reads state 3",
    ),
    "negative index": (
        _line(f"[[('std_conv_3x3', -1), ('std_conv_3x3', 0)], {GOOD_NODE}, {GOOD_NODE}]"),
        "node 0 edge ('std_conv_3x3', -1) reads state -1",
    ),
    "unknown op": (
        _line(f"[[('std_conv_5x5', 0), ('std_conv_3x3', 1)], {GOOD_NODE}, {GOOD_NODE}]"),
        "unknown op 'std_conv_5x5'; valid: std_conv_3x3",
    ),
    "none op": (
        _line(f"[[('none', 0), ('std_conv_3x3', 1)], {GOOD_NODE}, {GOOD_NODE}]"),
        "unknown op 'none'",
    ),
    "syntax": (
        "Genotype(normal=[[('std_conv_3x3', 0), ('std_conv_3x3', 1)], normal_concat=range(2, 5)",
        "malformed genotype, not valid syntax",
    ),
    "edge count": (
        _line(f"[[('std_conv_3x3', 0)], {GOOD_NODE}, {GOOD_NODE}]"),
        "node 0 has 1 edges, expected 2: [('std_conv_3x3', 0)]",
    ),
    "concat": (
        _line(f"[{GOOD_NODE}, {GOOD_NODE}]", "range(2, 5)"),
        "normal_concat=range(2, 5) does not match 2 nodes, expected range(2, 4)",
    ),
    "no nodes": (_line("[]", "range(2, 2)"), "0 nodes, expected at least 1"),
    "import": ("__import__('os').system('touch pwned')", "expected Genotype(normal=..."),
    "import inside": (
        _line("__import__('os').listdir('.')"),
        "expected a list of nodes: __import__('os').listdir('.')",
    ),
    "call as index": (
        _line(f"[[('std_conv_3x3', len('ab')), ('std_conv_3x3', 1)], {GOOD_NODE}, {GOOD_NODE}]"),
        "expected an integer: len('ab')",
    ),
    "bool index": (
        _line(f"[[('std_conv_3x3', True), ('std_conv_3x3', 1)], {GOOD_NODE}, {GOOD_NODE}]"),
        "expected an integer: True",
    ),
    "wrong name": (_line(f"[{GOOD_NODE}]", "range(2, 3)").replace("Genotype", "Gen"), "Gen("),
    "extra argument": (_line(f"[{GOOD_NODE}]", "range(2, 3)")[:-1] + ", reduce=[])", "reduce"),
    "lambda": (
        _line(f"[{GOOD_NODE}]", "(lambda: range(2, 3))()"),
        "expected normal_concat=range(start, stop)",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_line_names_file_line_and_piece(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    text, piece = MALFORMED[case]
    path = tmp_path / "genotype.log"
    path.write_text(f"# a comment\n\n{text}\n{ALT_CLS}\n")
    with pytest.raises(FadError) as info:
        read_genotype_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}:3: "), message
    assert piece in message, message
    assert "\n" not in message
    assert not (tmp_path / "pwned").exists()


def test_wrong_node_count_against_expected() -> None:
    with pytest.raises(FadError, match=r"^src:7: 3 nodes, expected 4"):
        parse_genotype(PAPER_BOX, source="src", line=7, num_nodes=4)
    assert parse_genotype(PAPER_BOX, num_nodes=3).num_nodes == 3


def test_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "g.log"
    path.write_text("# nothing\n")
    with pytest.raises(FadError, match="no genotype found"):
        read_genotype_file(path)
    path.write_text(f"{PAPER_BOX}\n{ALT_CLS}\n{ALT_CLS}\n")
    with pytest.raises(FadError, match=r"g.log:3: more than 2 genotypes"):
        read_genotype_file(path)
    with pytest.raises(FadError, match="cannot read"):
        read_genotype_file(tmp_path / "missing.log")
    with pytest.raises(
        FadError, match="neither a genotype preset \\(paper, alt\\) nor a genotype file"
    ):
        load_genotypes("papr")


def test_write_refuses_an_invalid_genotype(tmp_path: Path) -> None:
    bad = Genotype(normal=[[("std_conv_3x3", 0), ("std_conv_3x3", 2)]], normal_concat=range(2, 3))
    with pytest.raises(FadError, match="reads state 2"):
        write_genotype_file(tmp_path / "g.log", bad, bad)
    assert not list(tmp_path.iterdir())


def test_derive_excludes_none_and_keeps_top_two_edges() -> None:
    ops = SPACES["released"]
    column = {name: c for c, name in enumerate(ops)}
    node0 = torch.zeros(2, len(ops))
    node0[0, column["none"]] = 5.0  # never chosen
    node0[0, column["std_conv_3x3_x2+dil_conv_3x3"]] = 1.0
    node0[1, column["sinSep_conv_3x3_x2"]] = 2.0
    node1 = torch.zeros(3, len(ops))
    node1[0, column["std_conv_3x3"]] = 0.5
    node1[1, column["sinSep_conv_3x3_x3"]] = 3.0
    node1[2, column["std_conv_3x3_x3"]] = 1.5
    # Node 2 ranks edges by raw alpha as the original: edge 0 (2.1) beats edge 2 (1.0) although
    # its softmax weight is lower (all its ops are close).
    node2 = torch.zeros(4, len(ops))
    node2[0] = 2.0
    node2[0, column["sinSep_conv_3x3"]] = 2.1
    node2[1] = -10.0
    node2[1, column["std_conv_3x3+dil_conv_3x3"]] = 1.9
    node2[2, column["sinSep_conv_3x3+dil_conv_3x3"]] = 1.0
    genotype = derive_genotype([node0, node1, node2], ops)
    assert genotype.normal == [
        [("sinSep_conv_3x3_x2", 1), ("std_conv_3x3_x2+dil_conv_3x3", 0)],
        [("sinSep_conv_3x3_x3", 1), ("std_conv_3x3_x3", 2)],
        [("sinSep_conv_3x3", 0), ("std_conv_3x3+dil_conv_3x3", 1)],
    ]
    assert genotype.normal_concat == range(2, 5)
    assert parse_genotype(str(genotype)) == genotype

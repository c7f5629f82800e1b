"""Genotypes: plain data in the original ``genotype.log`` format, a safe grammar, files, presets.

A genotype line reads ``Genotype(normal=[[('op', i), ('op', j)], ...], normal_concat=range(2, 5))``:
node k (0-based) sums two edges, each an op applied to state i (0, 1: the cell inputs; 2 + m:
node m), and the cell outputs the concat of the nodes. The text is parsed with ``ast.parse`` and
only the literal structure above is accepted -- it is never evaluated. A genotype file holds the
box tower on its first genotype line and the cls tower on its second.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from fad.errors import FadError
from fad.runtime.atomic import atomic_write_text
from fad.search_space.ops import NONE, OP_SPECS, unknown_name_error

EDGES_PER_NODE = 2
INPUT_NODES = 2
ROLES = ("box", "cls")
MAX_LINE_CHARS = 10_000  # a 3-node line is ~250 characters; 40 nodes still fit
MAX_NESTING = 8  # Genotype( [ [ ( is 4 deep
MAX_FILE_BYTES = 1_000_000


@dataclass(frozen=True, eq=True, repr=False)
class Genotype:
    """A discrete cell: per node, its (op, input_index) edges; the concat of its node states."""

    normal: list[list[tuple[str, int]]]
    normal_concat: range

    def __post_init__(self) -> None:
        normal = [[(str(op), int(index)) for op, index in node] for node in self.normal]
        object.__setattr__(self, "normal", normal)

    def __repr__(self) -> str:
        return f"Genotype(normal={self.normal!r}, normal_concat={self.normal_concat!r})"

    __str__ = __repr__

    def __hash__(self) -> int:
        return hash(str(self))

    @property
    def num_nodes(self) -> int:
        return len(self.normal)


def validate_genotype(
    genotype: Genotype, *, num_nodes: int | None = None, where: str = "genotype"
) -> None:
    """Raise FadError (prefixed by ``where``) unless ``genotype`` is a valid cell of the space."""
    nodes = genotype.normal
    if not nodes or (num_nodes is not None and len(nodes) != num_nodes):
        expected = num_nodes if num_nodes is not None else "at least 1"
        raise FadError(f"{where}: {len(nodes)} nodes, expected {expected}: {nodes!r}")
    for k, node in enumerate(nodes):
        if len(node) != EDGES_PER_NODE:
            raise FadError(
                f"{where}: node {k} has {len(node)} edges, expected {EDGES_PER_NODE}: {node!r}"
            )
        for edge in node:
            op, index = edge
            if op not in OP_SPECS:
                raise FadError(
                    f"{where}: node {k} edge {edge!r}: {unknown_name_error('op', op, OP_SPECS)}"
                )
            if not 0 <= index < INPUT_NODES + k:
                raise FadError(
                    f"{where}: node {k} edge {edge!r} reads state {index}; "
                    f"node {k} may only read states 0..{INPUT_NODES + k - 1}"
                )
    expected_concat = range(INPUT_NODES, INPUT_NODES + len(nodes))
    if genotype.normal_concat != expected_concat:
        raise FadError(
            f"{where}: normal_concat={genotype.normal_concat!r} does not match "
            f"{len(nodes)} nodes, expected {expected_concat!r}"
        )


class _Grammar:
    """Walks the AST of one genotype line, accepting only the literal structure of the format."""

    def __init__(self, text: str, where: str) -> None:
        self.text = text
        self.where = where

    def fail(self, what: str, node: ast.AST | None = None) -> FadError:
        piece = self.text if node is None else ast.get_source_segment(self.text, node) or ""
        piece = piece if len(piece) <= 80 else piece[:77] + "..."
        return FadError(f"{self.where}: malformed genotype, {what}: {piece}")

    def genotype(self) -> Genotype:
        self._check_size()
        try:
            tree = ast.parse(self.text, mode="eval")
        except (SyntaxError, ValueError) as exc:
            raise self.fail(f"not valid syntax ({getattr(exc, 'msg', exc)})") from None
        except (RecursionError, MemoryError):  # e.g. a long chain of unary operators
            raise self.fail("too deeply nested") from None
        call = tree.body
        if not (isinstance(call, ast.Call) and self._is_name(call.func, "Genotype")):
            raise self.fail("expected Genotype(normal=..., normal_concat=...)", call)
        if call.args:
            raise self.fail("expected keyword arguments only", call.args[0])
        fields = {}
        for keyword in call.keywords:
            if keyword.arg not in ("normal", "normal_concat") or keyword.arg in fields:
                raise self.fail(f"unexpected argument {keyword.arg!r}", keyword)
            fields[keyword.arg] = keyword.value
        if len(fields) != 2:
            raise self.fail("expected both normal= and normal_concat=", call)
        normal = [self._node(n) for n in self._list(fields["normal"], "a list of nodes")]
        return Genotype(normal=normal, normal_concat=self._range(fields["normal_concat"]))

    def _check_size(self) -> None:
        """Bound the parser's input: its length, and how deep brackets nest."""
        if len(self.text) > MAX_LINE_CHARS:
            raise self.fail(f"longer than {MAX_LINE_CHARS} characters")
        depth = 0
        for char in self.text:
            depth += (char in "([{") - (char in ")]}")
            if depth > MAX_NESTING:
                raise self.fail(f"brackets nested deeper than {MAX_NESTING}")

    @staticmethod
    def _is_name(node: ast.AST, name: str) -> bool:
        return isinstance(node, ast.Name) and node.id == name

    def _list(self, node: ast.AST, what: str) -> list[ast.expr]:
        if not isinstance(node, ast.List):
            raise self.fail(f"expected {what}", node)
        return node.elts

    def _node(self, node: ast.AST) -> list[tuple[str, int]]:
        return [self._edge(edge) for edge in self._list(node, "a node: a list of edges")]

    def _edge(self, node: ast.AST) -> tuple[str, int]:
        if not (isinstance(node, ast.Tuple) and len(node.elts) == 2):
            raise self.fail("expected an edge ('op', input_index)", node)
        op, index = node.elts
        if not (isinstance(op, ast.Constant) and isinstance(op.value, str)):
            raise self.fail("expected an op name in quotes", op)
        return op.value, self._int(index)

    def _int(self, node: ast.AST) -> int:
        sign, inner = 1, node
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            sign, inner = -1, node.operand
        if not (
            isinstance(inner, ast.Constant)
            and isinstance(inner.value, int)
            and not isinstance(inner.value, bool)
        ):
            raise self.fail("expected an integer", node)
        return sign * inner.value

    def _range(self, node: ast.AST) -> range:
        if not (
            isinstance(node, ast.Call)
            and self._is_name(node.func, "range")
            and len(node.args) == 2
            and not node.keywords
        ):
            raise self.fail("expected normal_concat=range(start, stop)", node)
        return range(self._int(node.args[0]), self._int(node.args[1]))


def parse_genotype(
    text: str, *, source: str = "<string>", line: int = 1, num_nodes: int | None = None
) -> Genotype:
    """Parse and validate one genotype line; errors read ``source:line: ... piece``."""
    where = f"{source}:{line}"
    genotype = _Grammar(text.strip(), where).genotype()
    validate_genotype(genotype, num_nodes=num_nodes, where=where)
    return genotype


def read_genotype_file(path: str | os.PathLike[str]) -> dict[str, Genotype]:
    """Read a genotype file: {"box": line 1, "cls": line 2}; blank and ``#`` lines skipped."""
    try:
        if Path(path).exists() and not Path(path).is_file():  # a named pipe would block
            raise OSError("not a regular file")
        size = Path(path).stat().st_size
        if size > MAX_FILE_BYTES:
            raise FadError(
                f"{path}: {size} bytes, larger than a genotype file can be ({MAX_FILE_BYTES})"
            )
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FadError(f"{path}: cannot read genotype file: {exc}") from None
    genotypes = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped and not stripped.startswith("#"):
            if len(genotypes) == len(ROLES):
                raise FadError(f"{path}:{number}: more than {len(ROLES)} genotypes (box, cls)")
            genotypes.append(parse_genotype(stripped, source=str(path), line=number))
    if not genotypes:
        raise FadError(f"{path}: no genotype found (expected a box line, then a cls line)")
    return dict(zip(ROLES, genotypes, strict=False))


def write_genotype_file(path: str | os.PathLike[str], box: Genotype, cls: Genotype) -> None:
    """Write ``box`` then ``cls`` atomically (temp file in the same folder, fsync, replace)."""
    for role, genotype in zip(ROLES, (box, cls), strict=True):
        validate_genotype(genotype, where=f"{path} ({role})")
    atomic_write_text(Path(path), f"{box}\n{cls}\n")


def derive_genotype(
    alphas: Sequence[Tensor],
    op_names: Sequence[str],
    edge_weights: Sequence[Tensor] | None = None,
) -> Genotype:
    """The discrete cell of a search tower's alphas (one [2 + k, n_ops] tensor per node k).

    As the original: per edge the best op excluding ``none``; per node the two edges whose best
    op has the highest alpha, in that order. Ranking uses the raw alphas, as the original did.
    With ``edge_weights`` (edge normalisation, [2 + k] per node) the edges are ranked as PC-DARTS
    ranks them: by softmax(alpha) of their best op times their edge weight.
    """
    kept = [c for c, name in enumerate(op_names) if name != NONE]
    normal = []
    for k, alpha in enumerate(alphas):
        best, column = alpha.detach()[:, kept].max(dim=1)
        if edge_weights is not None:
            probs = alpha.detach().softmax(dim=-1)[:, kept].max(dim=1).values
            best = probs * edge_weights[k].detach()
        order = sorted(range(len(best)), key=lambda e: (-float(best[e]), e))
        normal.append([(op_names[kept[int(column[e])]], e) for e in order[:EDGES_PER_NODE]])
    return Genotype(normal=normal, normal_concat=range(INPUT_NODES, INPUT_NODES + len(normal)))


_PRESET_LINES = {
    # The seed README: "Architectures reported in the paper" (box line, cls line).
    "paper": (
        "Genotype(normal=[[('sinSep_conv_3x3_x3', 0), ('std_conv_3x3_x3', 1)], "
        "[('std_conv_3x3', 2), ('sinSep_conv_3x3+dil_conv_3x3', 1)], "
        "[('sinSep_conv_3x3_x2', 2), ('std_conv_3x3_x2', 3)]], normal_concat=range(2, 5))",
        "Genotype(normal=[[('sinSep_conv_3x3_x2+dil_conv_3x3', 1), ('std_conv_3x3_x3', 0)], "
        "[('sinSep_conv_3x3_x2+dil_conv_3x3', 0), ('sinSep_conv_3x3', 2)], "
        "[('sinSep_conv_3x3_x2', 2), ('std_conv_3x3', 3)]], normal_concat=range(2, 5))",
    ),
    # The seed README: "Other good architectures" (box line, cls line).
    "alt": (
        "Genotype(normal=[[('std_conv_3x3_x3', 0), ('std_conv_3x3_x2', 1)], "
        "[('std_conv_3x3', 0), ('std_conv_3x3+dil_conv_3x3', 2)], "
        "[('std_conv_3x3_x2+dil_conv_3x3', 3), ('std_conv_3x3+dil_conv_3x3', 2)]], "
        "normal_concat=range(2, 5))",
        "Genotype(normal=[[('std_conv_3x3_x3', 1), ('sinSep_conv_3x3+dil_conv_3x3', 0)], "
        "[('sinSep_conv_3x3', 0), ('sinSep_conv_3x3+dil_conv_3x3', 2)], "
        "[('std_conv_3x3', 1), ('std_conv_3x3_x3', 0)]], normal_concat=range(2, 5))",
    ),
}

PRESETS: dict[str, tuple[Genotype, Genotype]] = {
    name: (
        parse_genotype(box, source=f"preset {name!r}", line=1),
        parse_genotype(cls, source=f"preset {name!r}", line=2),
    )
    for name, (box, cls) in _PRESET_LINES.items()
}


def load_genotypes(name_or_path: str | os.PathLike[str]) -> dict[str, Genotype]:
    """A preset name (``paper``, ``alt``) or a genotype file -> {"box": ..., "cls": ...}."""
    key = os.fspath(name_or_path)
    if key in PRESETS:
        return dict(zip(ROLES, PRESETS[key], strict=True))
    if not Path(key).is_file():
        raise FadError(
            f"{key!r} is neither a genotype preset ({', '.join(PRESETS)}) nor a genotype file"
        )
    return read_genotype_file(key)

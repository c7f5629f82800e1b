"""DARTS (Liu et al., ICLR 2019), as FAD searched: softmax(alpha) over every op of every edge."""

from __future__ import annotations

from fad.search.methods.base import SearchMethod


class DartsFirstOrder(SearchMethod):
    """DARTS, first order: the alpha gradient at the current weights w."""

    name = "darts_1st"


class DartsSecondOrder(SearchMethod):
    """DARTS, second order: the unrolled alpha gradient at w' = w - lr * (SGD's step), with the
    Hessian-vector product by central differences (`fad.search.architect`)."""

    name = "darts_2nd"
    first_order = False

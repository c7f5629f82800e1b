"""Search methods, by the name SOLVER.SEARCH.METHOD gives (see `base.SearchMethod`).

To add one: a module with a `SearchMethod` subclass, and one line in `METHODS`.
"""

from __future__ import annotations

from fad.errors import FadError
from fad.search.methods.base import MethodOptions, SearchMethod
from fad.search.methods.darts import DartsFirstOrder, DartsSecondOrder
from fad.search.methods.gdas import GDAS
from fad.search.methods.pcdarts import PCDarts
from fad.search_space.ops import unknown_name_error

METHODS: dict[str, type[SearchMethod]] = {
    method.name: method for method in (DartsFirstOrder, DartsSecondOrder, GDAS, PCDarts)
}


def method_class(name: str, first_order: bool = True) -> type[SearchMethod]:
    """The method SOLVER.SEARCH.METHOD names; "" is DARTS of SOLVER.SEARCH.FIRST_ORDER's order
    (the original's key). A first-order method with FIRST_ORDER False is an error."""
    if not name:
        return DartsFirstOrder if first_order else DartsSecondOrder
    if name not in METHODS:
        raise unknown_name_error("SOLVER.SEARCH.METHOD", name, METHODS)
    method = METHODS[name]
    if not first_order and method.first_order:
        raise FadError(
            f"SOLVER.SEARCH.METHOD {name!r} is first order; SOLVER.SEARCH.FIRST_ORDER False asks "
            "for DARTS's second order: use METHOD 'darts_2nd' (or '') or FIRST_ORDER True"
        )
    return method


__all__ = ["METHODS", "MethodOptions", "SearchMethod", "method_class"]

"""fad: Representation Sharing for Fast Object Detector Search (FAD, ECCV 2020), on torchvision.

The Python API (`fad.load`, `fad.fcos`, `fad.read_genotypes`, `fad.write_genotypes`) lives in
`fad/api.py` and is imported on first use, so `import fad` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fad.runtime.version import __version__

__all__ = ["__version__", "fcos", "load", "read_genotypes", "write_genotypes"]
API = ("fcos", "load", "read_genotypes", "write_genotypes")

if TYPE_CHECKING:
    from fad.api import fcos, load, read_genotypes, write_genotypes


def __getattr__(name: str) -> Any:
    if name in API:
        from fad import api

        return getattr(api, name)
    raise AttributeError(f"module 'fad' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *API])

"""The detectors fad builds, by name: one line each (`fad.modeling.registry` says what an entry
holds; docs/architecture.md, "How to add a detector")."""

from __future__ import annotations

from fad.modeling.fcos.entry import FCOS
from fad.modeling.registry import DetectorRegistry
from fad.modeling.retinanet.entry import RETINANET

DETECTORS = DetectorRegistry([FCOS, RETINANET])

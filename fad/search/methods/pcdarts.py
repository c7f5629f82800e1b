"""PC-DARTS (Xu et al., ICLR 2020): partial channels and edge normalisation.

Each search edge sends only 1/K of its channels through the mixed op (MODEL.FAD.PARTIAL_CHANNELS
K; the others pass by), which cuts the ops' cost by K; to steady the choice of edges that the
sampling of channels makes noisy, each node weights its edges by softmax(beta)
(MODEL.FAD.EDGE_NORMALIZATION), and the genotype ranks a node's edges by op weight times edge
weight (`fad.search_space.genotype.derive_genotype`). Alpha step: DARTS first order.
"""

from __future__ import annotations

from fad.errors import FadError
from fad.search.methods.base import SearchMethod


class PCDarts(SearchMethod):
    """DARTS first order on a partial-channel supernet with edge normalisation."""

    name = "pcdarts"

    @classmethod
    def check_supernet(cls, partial_channels: int, edge_normalization: bool) -> None:
        if partial_channels < 2 or not edge_normalization:
            raise FadError(
                "SOLVER.SEARCH.METHOD 'pcdarts' needs MODEL.FAD.PARTIAL_CHANNELS > 1 (e.g. 4) and "
                f"MODEL.FAD.EDGE_NORMALIZATION True, got {partial_channels} and {edge_normalization}"
            )

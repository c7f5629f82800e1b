"""Peak resident memory, reset between stages."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from fad.runtime.memory import peak_rss_mib, reset_peak_rss


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/clear_refs")
def test_the_peak_rises_with_an_allocation_and_falls_back_on_reset():
    assert reset_peak_rss()
    before = peak_rss_mib()
    block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    block.sum()
    high = peak_rss_mib()
    assert high >= before + 50
    del block
    assert reset_peak_rss()
    assert peak_rss_mib() < high - 50

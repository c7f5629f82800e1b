"""Peak resident memory, reset between stages."""

from __future__ import annotations

import mmap
import sys

import pytest

from fad.runtime.memory import peak_rss_mib, reset_peak_rss

PAGE = mmap.PAGESIZE


def _touched_block(size: int) -> mmap.mmap:
    """`size` bytes of fresh anonymous memory, every page written. Not through malloc: after
    many tests the heap may hold a free chunk that large, already resident, which would serve
    the allocation without raising the resident size."""
    block = mmap.mmap(-1, size)
    for offset in range(0, size, PAGE):
        block[offset] = 1
    return block


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/clear_refs")
def test_the_peak_rises_with_an_allocation_and_falls_back_on_reset():
    assert reset_peak_rss()
    before = peak_rss_mib()
    block = _touched_block(64 * 2**20)  # 64 MiB
    high = peak_rss_mib()
    assert high >= before + 50
    block.close()
    assert reset_peak_rss()
    assert peak_rss_mib() < high - 50

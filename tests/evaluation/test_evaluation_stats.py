"""The paired t interval on known numbers."""

from __future__ import annotations

import math

import pytest

from fad.evaluation.stats import paired_interval, t_cdf, t_quantile


@pytest.mark.parametrize(
    ("df", "quantile"),
    [(1, 12.7062), (2, 4.3027), (4, 2.7764), (9, 2.2622), (29, 2.0452), (1000, 1.9623)],
)
def test_t_quantiles_match_the_tables(df, quantile):
    assert t_quantile(0.975, df) == pytest.approx(quantile, abs=1e-4)
    assert t_quantile(0.025, df) == pytest.approx(-quantile, abs=1e-4)
    assert t_cdf(quantile, df) == pytest.approx(0.975, abs=1e-5)  # tables give 4 decimals


def test_paired_interval_on_known_numbers():
    # differences 0.01, 0.02, 0.03: mean 0.02, s = 0.01, half-width 4.3027 * 0.01 / sqrt(3)
    interval = paired_interval([0.51, 0.52, 0.53], [0.50, 0.50, 0.50])
    half = 4.302653 * 0.01 / math.sqrt(3)
    assert interval.mean == pytest.approx(0.02)
    assert interval.std == pytest.approx(0.01)
    assert (interval.low, interval.high) == pytest.approx((0.02 - half, 0.02 + half), abs=1e-6)
    assert "contains 0" in interval.verdict("FAD", "FCOS")  # 0.020 +- 0.025
    better = paired_interval([0.52, 0.525, 0.53], [0.50, 0.50, 0.50])  # 0.025 +- 0.012
    assert better.low > 0 and "lies above 0, so FAD is better" in better.verdict("FAD", "FCOS")


def test_the_verdict_follows_the_interval():
    spread = paired_interval([0.50, 0.55, 0.48], [0.51, 0.50, 0.50])
    assert spread.low < 0 < spread.high
    assert "contains 0" in spread.verdict("FAD", "FCOS")
    worse = paired_interval([0.40, 0.41, 0.42], [0.50, 0.52, 0.51])
    assert "below 0, so FCOS is better" in worse.verdict("FAD", "FCOS")
    single = paired_interval([0.5], [0.4])
    assert math.isnan(single.low) and "no conclusion" in single.verdict("FAD", "FCOS")

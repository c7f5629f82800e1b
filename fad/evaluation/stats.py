"""Statistics for comparing two detectors over seeds: the paired t interval and its verdict.

Each seed trains both detectors (same initialisation of what they share, same data order), so the
comparison uses the per-seed differences d_i = a_i - b_i: their mean, sample standard deviation
s and the two-sided interval mean +- t_{1 - alpha/2, n - 1} * s / sqrt(n) (Student's t). The t
quantile is computed here (regularised incomplete beta by continued fraction, then bisection) so
no statistics package is needed.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def _incomplete_beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the regularised incomplete beta (Lentz's method)."""
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _incomplete_beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _incomplete_beta_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom."""
    tail = 0.5 * regularized_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The `p` quantile of Student's t (0 < p < 1), by bisection on `t_cdf`."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    low, high = -1e6, 1e6
    for _ in range(200):
        middle = (low + high) / 2.0
        low, high = (middle, high) if t_cdf(middle, df) < p else (low, middle)
    return (low + high) / 2.0


@dataclass(frozen=True)
class PairedInterval:
    """Mean, sample std, n and the two-sided confidence interval of paired differences."""

    mean: float
    std: float
    n: int
    low: float
    high: float
    confidence: float

    def verdict(self, a: str, b: str, metric: str = "AP") -> str:
        """One sentence that follows from the interval."""
        level = f"{self.confidence:.0%}"
        span = f"{metric} {a} - {b} = {self.mean:+.3f}, {level} interval [{self.low:+.3f}, {self.high:+.3f}] over {self.n} seeds"
        if self.n < 2:
            return f"{span}: one seed gives no interval, so no conclusion."
        if self.low > 0:
            return f"{span}: the interval lies above 0, so {a} is better at this budget."
        if self.high < 0:
            return f"{span}: the interval lies below 0, so {b} is better at this budget."
        return f"{span}: the interval contains 0, so the difference is not significant."


def paired_interval(
    a: Sequence[float], b: Sequence[float], confidence: float = 0.95
) -> PairedInterval:
    """The t interval of the mean of a_i - b_i (NaN bounds for fewer than two pairs)."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired values need equal, non-zero lengths, got {len(a)} and {len(b)}")
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    n, mean = len(diffs), statistics.fmean(diffs)
    if n < 2:
        return PairedInterval(mean, 0.0, n, math.nan, math.nan, confidence)
    std = statistics.stdev(diffs)
    half = t_quantile(0.5 + confidence / 2.0, n - 1) * std / math.sqrt(n)
    return PairedInterval(mean, std, n, mean - half, mean + half, confidence)

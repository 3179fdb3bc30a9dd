"""Intervals and comparisons, one copy each: t intervals over seeds, bootstrap and quartile ranges of time ratios,
the Pareto front, and the Verdict every study hands to the paper.

A Verdict is plain data (what was compared, the estimate, its interval, the short phrase the interval allows); the
text around it lives in paper/sections/*.tex. Tests assert on verdicts, not on wording.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

LEVEL = 0.95  # of every interval
RESAMPLES, SEED = 2000, 0  # of every bootstrap


@dataclass(frozen=True)
class Verdict:
    """One comparison the paper states: `subject` against `reference` in `quantity`, estimate and interval.

    word: the short phrase the interval allows ('faster than', 'about as fast as', 'higher', ...), chosen from the
    numbers as printed. unit: 'ratio' (subject / reference) or 'points' (subject minus reference, percent points).
    """
    key: str
    subject: str
    reference: str
    quantity: str
    estimate: float
    lo: float
    hi: float
    word: str
    unit: str = "ratio"
    n: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def t_quantile(n: int, level: float = LEVEL) -> float:
    """Standard errors on each side of the mean of n values that a two-sided t interval spans."""
    return float(stats.t.ppf((1 + level) / 2, n - 1))


def t_interval(values, level: float = LEVEL) -> tuple[float, float, int]:
    """Mean, half-width of the t interval of the mean (NaN below two values) and the number of values; missing and
    infinite values (a diverged run) are left out."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], float)
    n = len(x)
    if n < 2:
        return (float(x.mean()) if n else np.nan), np.nan, n
    return float(x.mean()), float(t_quantile(n, level) * x.std(ddof=1) / np.sqrt(n)), n


def bootstrap_ratio(a, b, resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL):
    """median(a) / median(b) and its percentile bootstrap interval: both samples resampled with replacement."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    rng = np.random.default_rng(seed)
    ratios = (np.median(rng.choice(a, (resamples, len(a))), axis=1)
              / np.median(rng.choice(b, (resamples, len(b))), axis=1))
    lo, hi = np.percentile(ratios, [50 * (1 - level), 50 * (1 + level)])
    return float(np.median(a) / np.median(b)), float(lo), float(hi)


def quartile_ratio(a, ia, b, ib):
    """A range of a/b from the quartiles of both (median -/+ IQR/2): (lo, hi); arrays or scalars, a missing IQR
    counts as none, and hi is infinite where b's lower quartile reaches zero."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    ia, ib = np.nan_to_num(np.asarray(ia, float)) / 2, np.nan_to_num(np.asarray(ib, float)) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = (a - ia) / (b + ib)
        hi = np.where(b > ib, (a + ia) / np.where(b > ib, b - ib, 1.0), np.inf)
    return (float(lo), float(hi)) if lo.ndim == 0 else (lo, hi)


def time_ratio(a: float, a_iqr: float, b: float, b_iqr: float) -> tuple[float, float, float]:
    """a/b and its quartile-based range (lo, hi)."""
    lo, hi = quartile_ratio(a, a_iqr, b, b_iqr)
    return a / b, lo, hi


def pareto_front(params, accuracy) -> np.ndarray:
    """True for every point that no other point dominates (at most as many parameters and at least the accuracy, one
    of the two strictly); points with a missing value are never on the front."""
    p, a = np.asarray(params, float), np.asarray(accuracy, float)
    ok = np.isfinite(p) & np.isfinite(a)
    front = np.zeros(len(p), bool)
    for i in np.flatnonzero(ok):
        dominated = ok & (p <= p[i]) & (a >= a[i]) & ((p < p[i]) | (a > a[i]))
        front[i] = not dominated.any()
    return front


def verdict_frame(verdicts: list[Verdict]) -> pd.DataFrame:
    return pd.DataFrame([v.to_dict() for v in verdicts])

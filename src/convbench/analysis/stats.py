"""Intervals and comparisons, one copy each: t intervals over seeds, bootstrap and quartile ranges of time ratios,
the Pareto front, and the Verdict every study hands to the paper.

A Verdict is plain data: what was compared, the estimate, its interval, the interval's kind, the practical margin and
the outcome the decision rule gives (decide_ratio, decide_points, decide_several). Words are rendered from the outcome
at render time (formatting.verdict_word); code and tests use the enum, never the words.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import Enum

import numpy as np
import pandas as pd
from scipy import stats

LEVEL = 0.95  # of every interval
RESAMPLES, SEED = 2000, 0  # of every bootstrap
ODD = 0.25  # a launch whose median lies this far (relative) from its cell's other launches' median is odd (odd_launch)
SEVERAL = 2.0  # "several times" means at least this factor, either way (the engines and overhead studies' claim)


class Outcome(str, Enum):
    """What an interval says against the practical margin. Time ratios: FASTER, SLOWER; differences in points: HIGHER,
    LOWER; both: EQUIVALENT (the whole interval inside the margin), UNDECIDED (anything else). The "several times"
    claim: AT_LEAST (the whole interval at or beyond the factor, either way), LESS_THAN (wholly inside it), UNDECIDED.
    NONE: a fact without an interval (Verdict.fact says what)."""
    FASTER = "faster"
    SLOWER = "slower"
    HIGHER = "higher"
    LOWER = "lower"
    EQUIVALENT = "equivalent"
    UNDECIDED = "undecided"
    AT_LEAST = "at_least"
    LESS_THAN = "less_than"
    NONE = "none"

    @property
    def decided(self) -> bool:
        return self not in (Outcome.UNDECIDED, Outcome.NONE)


class Kind(str, Enum):
    """How a verdict's interval was computed (formatting.KIND_PHRASES names each in the paper)."""
    LAUNCHES = "launches"  # t interval of the mean log ratio over launch medians, paired by launch (launch_ratio)
    SEEDS = "seeds"  # paired t interval over seeds, at its Holm level (paired_verdicts)
    WELCH = "welch"  # Welch t interval over the launch medians of two unpaired cells (unpaired_ratio)
    BOOTSTRAP = "bootstrap"  # percentile bootstrap of the raw samples of one launch (bootstrap_ratio)
    QUARTILES = "quartiles"  # range from both medians' quartiles (quartile_ratio)
    PREDICTION = "prediction"  # t prediction interval of one new seed (prediction_interval)
    SPREAD = "spread"  # lowest to highest over several comparisons (or their intervals)
    NONE = "none"  # no interval


@dataclass(frozen=True)
class Margins:
    """The practical margins of the decision rule (the config's `margins`): a time ratio is equivalent inside
    [1/(1 + time), 1 + time]; a difference in accuracy inside -accuracy..+accuracy (a fraction: 0.01 is one point)."""
    time: float = 0.05
    accuracy: float = 0.01

    @classmethod
    def from_config(cls, section: dict | None) -> "Margins":
        """From the config's margins section (accuracy in points); defaults for what it leaves out."""
        section = section or {}
        return cls(float(section.get("time", cls.time)), float(section.get("accuracy", 100 * cls.accuracy)) / 100)

    @property
    def ratio(self) -> float:
        return 1 + self.time


MARGINS = Margins()


def decide_ratio(lo: float, hi: float, margin: float = MARGINS.ratio) -> Outcome:
    """A time ratio's interval against the margin m (e.g. 1.05): SLOWER wholly above m, FASTER wholly below 1/m,
    EQUIVALENT wholly inside [1/m, m], else UNDECIDED (also without an interval)."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return Outcome.UNDECIDED
    if lo > margin:
        return Outcome.SLOWER
    if hi < 1 / margin:
        return Outcome.FASTER
    return Outcome.EQUIVALENT if 1 / margin <= lo and hi <= margin else Outcome.UNDECIDED


def decide_points(lo: float, hi: float, margin: float = MARGINS.accuracy) -> Outcome:
    """A difference's interval (fractions) against the margin m: HIGHER wholly above m, LOWER wholly below -m,
    EQUIVALENT wholly inside [-m, m], else UNDECIDED (also without an interval)."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return Outcome.UNDECIDED
    if lo > margin:
        return Outcome.HIGHER
    if hi < -margin:
        return Outcome.LOWER
    return Outcome.EQUIVALENT if -margin <= lo and hi <= margin else Outcome.UNDECIDED


def decide_several(lo: float, hi: float, factor: float = SEVERAL) -> Outcome:
    """A time ratio's interval against "several times": AT_LEAST where it lies wholly at or beyond factor (or at or
    below 1/factor), LESS_THAN where wholly inside (1/factor, factor), else UNDECIDED."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return Outcome.UNDECIDED
    if lo >= factor or hi <= 1 / factor:
        return Outcome.AT_LEAST
    return Outcome.LESS_THAN if 1 / factor < lo and hi < factor else Outcome.UNDECIDED


@dataclass(frozen=True)
class Verdict:
    """One comparison the paper states: `subject` against `reference` in `quantity`, estimate and interval.

    outcome: what the decision rule gives against `margin` (a ratio such as 1.05, points as a fraction such as 0.01,
    or the factor of the several-times claim). kind: how the interval was computed. unit: 'ratio' (subject /
    reference) or 'points' (subject minus reference). scale: the row of the words table (formatting.WORDS: 'time',
    'accuracy', 'gap', 'overfit', 'several', 'size'). fact: for outcome NONE, what was found without an interval.
    """
    key: str
    subject: str
    reference: str
    quantity: str
    estimate: float
    lo: float
    hi: float
    outcome: Outcome
    kind: Kind
    margin: float = math.nan
    unit: str = "ratio"
    scale: str = "time"
    n: int | None = None
    level: float | None = None  # of the interval, where a correction for several comparisons moved it off LEVEL
    fact: str | None = None
    copy_of: str | None = None  # the key of the comparison this one repeats under another name (a headline)

    def to_dict(self) -> dict:
        d = asdict(self)
        return d | {"outcome": self.outcome.value, "kind": self.kind.value}

    def renamed(self, key: str) -> "Verdict":
        """The same comparison under another key, marked as a copy of the first (counted once by compare_runs)."""
        return Verdict(**{**asdict(self), "key": key, "copy_of": self.copy_of or self.key})

    @property
    def detectable(self) -> float:
        """The minimum detectable effect at this verdict's seeds: its interval's half-width. A mean difference below
        it is not told from none; one is decided beyond the margin only past the margin plus it."""
        return (self.hi - self.lo) / 2


def time_verdict(key: str, subject: str, reference: str, quantity: str, r: float, lo: float, hi: float, kind: Kind,
                 margins: Margins = MARGINS, n: int | None = None) -> Verdict:
    """A time ratio subject / reference, decided against the time margin."""
    return Verdict(key, subject, reference, quantity, float(r), float(lo), float(hi),
                   decide_ratio(lo, hi, margins.ratio), Kind(kind), margins.ratio, "ratio", "time", n)


def several_verdict(key: str, subject: str, reference: str, quantity: str, r: float, lo: float, hi: float,
                    kind: Kind, n: int | None = None, factor: float = SEVERAL) -> Verdict:
    """A time ratio subject / reference, decided against the several-times factor."""
    return Verdict(key, subject, reference, quantity, float(r), float(lo), float(hi), decide_several(lo, hi, factor),
                   Kind(kind), factor, "ratio", "several", n)


def fact_verdict(key: str, subject: str, reference: str, quantity: str, estimate: float, lo: float, hi: float,
                 fact: str, unit: str = "ratio", n: int | None = None, kind: Kind = Kind.NONE) -> Verdict:
    """What was found without an interval the decision rule reads (a count, a category): outcome NONE, the fact."""
    return Verdict(key, subject, reference, quantity, float(estimate), float(lo), float(hi), Outcome.NONE, kind,
                   math.nan, unit, "fact", n, None, fact)


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


@dataclass(frozen=True)
class Paired:
    """Per-seed differences subject minus reference (seeds shared across networks: same initial draw, same data
    order) to be judged together with the other comparisons of their family; scale: the row of the words table."""
    key: str
    subject: str
    reference: str
    quantity: str
    diffs: tuple[float, ...]
    scale: str = "accuracy"


def paired_t(diffs, level: float = LEVEL) -> tuple[float, float, float, int, float]:
    """Mean of paired differences, its t interval (lo, hi), the number of pairs and the two-sided p-value of a zero
    mean (scipy.stats.ttest_1samp); lo = hi = mean and p 0 or 1 where every difference is the same."""
    d = np.asarray([x for x in diffs if x is not None and np.isfinite(x)], float)
    n = len(d)
    if n < 2:
        return (float(d.mean()) if n else np.nan), np.nan, np.nan, n, np.nan
    mean = float(d.mean())
    if np.ptp(d) == 0:
        return mean, mean, mean, n, float(mean == 0)
    test = stats.ttest_1samp(d, 0.0)
    lo, hi = test.confidence_interval(level)
    return mean, float(lo), float(hi), n, float(test.pvalue)


def holm_levels(pvalues, level: float = LEVEL) -> list[float]:
    """Holm's step-down correction written as interval levels, one per comparison: the i-th smallest p-value's
    interval (i = 0, ..., m - 1 here; i + 1 in the paper's 1-based count) gets level 1 - alpha/(m - i) until the first comparison Holm does not reject, and every later one that
    comparison's level. An interval excludes zero exactly where Holm rejects; a comparison without a p-value (fewer
    than two pairs) counts in m and gets the last level."""
    alpha, p = 1 - level, np.asarray(pvalues, float)
    m, levels, stop = len(p), [level] * len(p), None
    for i, j in enumerate(sorted(range(m), key=lambda j: (np.isnan(p[j]), p[j]))):
        step = 1 - alpha / (m - i)
        if stop is None and (np.isnan(p[j]) or p[j] > alpha / (m - i)):
            stop = step
        levels[j] = step if stop is None else stop
    return levels


def paired_verdicts(family: list[Paired], margins: Margins = MARGINS, level: float = LEVEL) -> list[Verdict]:
    """Verdicts on a family of paired comparisons, Holm-corrected over the family: each the mean difference
    (points) with its t interval at the Holm level, decided against the accuracy margin (decide_points). A comparison
    with fewer than two pairs has no interval and no verdict."""
    tests = [paired_t(c.diffs) for c in family]
    levels = holm_levels([t[4] for t in tests], level)
    out = []
    for c, (mean, _, _, n, _), lev in zip(family, tests, levels):
        if n < 2:
            continue
        _, lo, hi, _, _ = paired_t(c.diffs, lev)
        out.append(Verdict(c.key, c.subject, c.reference, c.quantity, mean, lo, hi,
                           decide_points(lo, hi, margins.accuracy), Kind.SEEDS, margins.accuracy, "points", c.scale,
                           n, lev))
    return out


def prediction_interval(values, level: float = LEVEL) -> tuple[float, float, float, int]:
    """Mean of n values and the t prediction interval of one new value from the same population (a new seed):
    mean -/+ t(n-1) s sqrt(1 + 1/n); NaN bounds below two values."""
    mean, half, n = t_interval(values, level)
    if n < 2:
        return mean, np.nan, np.nan, n
    half *= np.sqrt(n + 1)  # t s / sqrt(n) -> t s sqrt(1 + 1/n)
    return mean, mean - half, mean + half, n


def bootstrap_ratio(a, b, resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL):
    """median(a) / median(b) and its percentile bootstrap interval: both samples resampled with replacement."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    rng = np.random.default_rng(seed)
    ratios = (np.median(rng.choice(a, (resamples, len(a))), axis=1)
              / np.median(rng.choice(b, (resamples, len(b))), axis=1))
    lo, hi = np.percentile(ratios, [50 * (1 - level), 50 * (1 + level)])
    return float(np.median(a) / np.median(b)), float(lo), float(hi)


def odd_launch(medians: pd.Series, odd: float = ODD):
    """The one launch (its index) whose median lies more than `odd` (relative) from the median of the cell's other
    launches, where exactly one does and four or more launches ran: a transient of the machine during that launch, not
    a property of the code (a cell whose launches split into two groups has two or more such launches, and keeps them
    all). None otherwise."""
    m = pd.Series(medians, dtype=float).dropna()
    if len(m) < 4 or (m <= 0).any():
        return None
    far = [i for i in m.index if abs(m[i] / m.drop(i).median() - 1) > odd]
    return far[0] if len(far) == 1 else None


def launch_ratio(a: pd.Series, b: pd.Series, level: float = LEVEL):
    """a/b from launch-level medians (Series indexed by launch), paired by launch: both cells ran in the same launch,
    so what moves a whole launch moves both. The geometric mean of the paired ratios with the t interval of the mean
    of their logs, and the number of launches; an odd launch of either cell (odd_launch) is left out. None with
    fewer than two paired launches or a median at or below zero."""
    both = pd.concat([pd.Series(a, dtype=float), pd.Series(b, dtype=float)], axis=1, join="inner").dropna()
    if len(both) < 2 or (both.to_numpy() <= 0).any():  # a time at or below zero (a derived phase) has no log
        return None
    both = both.drop(index={odd_launch(both.iloc[:, i]) for i in (0, 1)} - {None})
    mean, half, n = t_interval(np.log(both.iloc[:, 0] / both.iloc[:, 1]), level)
    return float(np.exp(mean)), float(np.exp(mean - half)), float(np.exp(mean + half)), n


def unpaired_ratio(a: pd.Series, b: pd.Series, level: float = LEVEL):
    """a/b from the launch medians of two cells that did not run side by side (two separate runs): the ratio of their
    geometric means with Welch's t interval on the difference of the mean logs (scipy.stats.ttest_ind), and the
    number of launches. None with fewer than two launches on either side or a median at or below zero."""
    x, y = (np.log(np.asarray(v, float)) if len(v) and (np.asarray(v, float) > 0).all() else np.array([])
            for v in (a, b))
    if len(x) < 2 or len(y) < 2:
        return None
    lo, hi = stats.ttest_ind(x, y, equal_var=False).confidence_interval(level)
    return float(np.exp(x.mean() - y.mean())), float(np.exp(lo)), float(np.exp(hi)), len(x) + len(y)


def time_interval(launches_a: pd.Series, launches_b: pd.Series, samples_a, samples_b, level: float = LEVEL,
                  resamples: int = RESAMPLES, seed: int = SEED):
    """A time ratio a/b and its interval: from the launch-level medians where both cells ran in two or more launches
    (launch_ratio), else a percentile bootstrap of the raw samples of the one launch (which misses the variance
    between launches). Returns (ratio, lo, hi, n, kind): n launches or samples, kind Kind.LAUNCHES or
    Kind.BOOTSTRAP; None without samples."""
    found = launch_ratio(launches_a, launches_b, level)
    if found is not None:
        return (*found, Kind.LAUNCHES)
    if len(samples_a) and len(samples_b):
        return (*bootstrap_ratio(samples_a, samples_b, resamples, seed, level), len(samples_a) + len(samples_b),
                Kind.BOOTSTRAP)
    return None


def resolved(launches, samples, level: float = LEVEL) -> bool:
    """Whether a difference of two timed programs (a derived phase) is told apart from zero: no raw sample at or below
    zero, and, over two or more launches, the t interval of the launch medians' mean above zero."""
    x = np.asarray(samples, float)
    if not len(x) or (x <= 0).any():
        return False
    mean, half, n = t_interval(launches, level)
    return bool(n < 2 or mean - half > 0)


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

"""The kernel study's table: its stack pairs (main text)."""
from __future__ import annotations

import pandas as pd

from convbench.analysis.formatting import beside, kind_phrase, percent, ratio, setup_rank, signed, tt
from convbench.analysis.kernel.values import Pair, accuracy_verdicts, comparisons, family_size, pair_verdicts
from convbench.analysis.latex import booktabs, placeholder
from convbench.analysis.stats import Verdict
from convbench.analysis.study import Run


def with_range(x: tuple[float, float, float] | None, margin: float) -> str:
    """'ratio (lo--hi)', the ends with the digits that show on which side of the margin they lie."""
    return f"{ratio(x[0])} ({beside(x[1], (margin, 1 / margin))}--{beside(x[2], (margin, 1 / margin))})" if x else "--"


def paired(v: Verdict | None) -> str:
    """A paired difference as 'estimate (lo, hi)' in points, the ends with the digits that show on which side of the
    margin they lie; '--' without a verdict."""
    if v is None:
        return "--"
    lo, hi = (signed(beside(x, (v.margin, -v.margin), 1, 100)) for x in (v.lo, v.hi))  # ends: their margin side
    return f"{signed(percent(v.estimate))} ({lo}, {hi})" if lo != hi else f"{signed(percent(v.estimate))} (no spread)"


def pair_row(p: Pair, found: dict[str, Verdict], margin: float) -> dict:
    return {"Single": tt(p.a), "Stack": tt(p.b), "timed": ratio(p.params) if p.params is not None else "--",
            "trained": ratio(p.trained_params) if p.trained_params is not None else "--",
            **{phase.title(): with_range(p.ratios.get(phase), margin) for phase in ("forward", "backward", "step")},
            "Test": paired(found.get(f"{p.diff_key}/test-accuracy-diff")),
            "Gap": paired(found.get(f"{p.diff_key}/gap-diff")), "Seeds": str(len(p.test_diffs) or "--")}


def pairs(run: Run) -> str:
    found = comparisons(run)
    times = pair_verdicts(found, run.margins)
    diffs = accuracy_verdicts(found, run.margins)
    holm = f" over the study's {family_size(found)} accuracy and gap comparisons" if diffs else ""
    caption = ("One $k\\times k$ convolution per block (single) against the stack of smaller convolutions with the "
               "same receptive field: the single's parameters over the stack's (of the timed networks and of the "
               "trained ones, whose input and classes differ), time of the single over the stack's "
               f"per phase (the ratio, and in parentheses its {kind_phrase(v.kind for v in times)}), and single minus stack in test "
               f"accuracy and train/test gap (points: mean of the per-seed differences, {kind_phrase(v.kind for v in diffs)}"
               f"{holm}; "
               "the gap over the seeds where both runs converged; seeds: pairs of replicate runs).")
    if not found:
        return placeholder(caption, "tab:kernel-pairs", "No single kernel and stack of the same receptive field "
                                                        "both have results in this run.")
    found = sorted(found, key=lambda p: setup_rank(p.slug))  # stable: the pairs' order within a setup
    verdicts = {v.key: v for v in accuracy_verdicts(found, run.margins)}
    table = pd.DataFrame([pair_row(p, verdicts, run.margins.ratio) for p in found])
    time, diff, params = "Time, single / stack", "Single minus stack (points)", "Params"
    table.columns = pd.MultiIndex.from_tuples([(time, c) if c in ("Forward", "Backward", "Step") else
                                               (diff, c) if c in ("Test", "Gap") else
                                               (params, c) if c in ("timed", "trained") else ("", c)
                                               for c in table.columns])
    return booktabs(table, caption, "tab:kernel-pairs", "ll" + "r" * 8, raw=(("", "Single"), ("", "Stack"), (diff, "Test"), (diff, "Gap")),
                    size=r"\scriptsize", colsep="2pt", groups=pd.Series([p.label for p in found]))

"""The learned study's tables: the grid search per network (appendix), the shrunk networks (main text) and every
setup's verdicts (appendix)."""
from __future__ import annotations

import pandas as pd

from convbench.analysis.formatting import (
    X,
    escape,
    kind_phrase,
    ms,
    percent,
    pm,
    ratio,
    sci,
    sig3,
    signed,
    thousands,
    tt,
    verdict_word,
)
from convbench.analysis.latex import booktabs, placeholder, ragged
from convbench.analysis.learned import data
from convbench.analysis.learned.values import costs, frames, verdicts_of
from convbench.analysis.stats import LEVEL
from convbench.analysis.study import Run

FAILED = r"\emph{failed}"
STAR = r"$^\star$"
CI = f"{LEVEL * 100:.0f}\\,\\% CI"


def seeds(r) -> str:
    return f"{r.seeds}" + (f" (+{r.failed} failed)" if r.failed else "")


def sweep(run: Run) -> str:
    f = frames(run)
    timed = bool(len(f.sweep) and f.sweep[["forward", "backward"]].notna().any().any())
    caption = (f"The grid search: the hand-picked networks trained on the learned networks' task, final test accuracy "
               f"in percent, mean\\,$\\pm$\\,half-width of the {CI} over seeds; parameters and forward MFLOPs per "
               f"example{'; forward and backward time of the speed cells in ms, median (IQR) over repeats' * timed}. "
               f"Matched: "
               f"against the reference (the grid's network of one convolution per block at its most common widths, a "
               f"3{X}3 one where the grid has it), read from the widths.")
    if f.sweep.empty:
        return placeholder(caption, "tab:learned-sweep", "This run has no training cells of the kernel study.")
    rows = []
    for r in f.sweep.itertuples():
        timing = {}
        for phase in ("forward", "backward"):
            value, iqr = getattr(r, phase), getattr(r, f"{phase}_iqr")
            timing[phase] = ms(value, iqr) if pd.notna(value) else (FAILED if r.speed_ok is False else "--")
        rows.append({"Architecture": tt(r.arch), "Blocks": escape(r.description), "Matched": escape(r.matching),
                     "Seeds": seeds(r),
                     "Test (%)": FAILED if r.seeds == 0 else pm(r.mean, r.ci) + (STAR if r.front else ""),
                     "Params": thousands(r.params), "MFLOPs": sig3(r.flops / 1e6) if pd.notna(r.flops) else "--",
                     "Forward": timing["forward"], "Backward": timing["backward"]})
    rows = [{k: v for k, v in row.items() if timed or k not in ("Forward", "Backward")} for row in rows]
    note = f"{STAR}\\,On the Pareto front of mean test accuracy against parameters in its setup." + (
        f" Equal params: other widths, parameters within {data.EQUAL_PARAMS * 100:.0f}\\,\\% of the reference's."
        if (f.sweep["matching"] == "equal params").any() else "")
    return booktabs(pd.DataFrame(rows), caption, "tab:learned-sweep", "lllrrrr" + "rr" * timed,
                    raw=("Architecture", "Blocks", "Matched", "Test (%)", "Forward", "Backward"), size=r"\scriptsize",
                    groups=f.sweep["label"].reset_index(drop=True), note=note, colsep="2pt")


def shrunk(run: Run) -> str:
    f = frames(run)
    caption = ("The learned networks after crop and prune: kernel size and maps per block (kept/initial), test "
               "accuracy (\\%) of the trained (masked or gated) and of the shrunk network, parameters, a training "
               "step of each at the training input (ms, median (IQR)), and the largest logit difference between the "
               "two over the test set.")
    if f.lcells.empty:
        return placeholder(caption, "tab:learned-shrunk", "This run has no training cells of the learned study.")
    rows = []
    for r in f.lstats.itertuples():
        if r.seeds == 0:
            row = dict.fromkeys(["Kernels", "Maps", "Trained", "Shrunk", "Params", "Step", "Step shrunk", "Diff"],
                                FAILED)
        else:
            maps = ", ".join(f"{m:.0f}/{i}" if r.seeds == 1 else f"{m:.1f}/{i}" for m, i in zip(r.maps_mean, r.maps))
            kernels = ", ".join(f"{k}/{i}" for k, i in zip(r.kept_kernels, r.kernels))
            if r.kernels_agree < r.seeds:
                kernels += f" ({r.kernels_agree} of {r.seeds})"
            row = {"Kernels": kernels, "Maps": maps, "Trained": pm(r.trained, r.trained_ci),
                   "Shrunk": pm(r.test, r.test_ci),
                   "Params": f"{thousands(r.params_initial)} $\\to$ {thousands(r.shrunk_params)}",
                   "Step": ms(r.step_learned, r.step_learned_iqr), "Step shrunk": ms(r.step_shrunk, r.step_shrunk_iqr),
                   "Diff": sci(r.max_diff)}
        rows.append({"Architecture": tt(r.arch), "Seeds": seeds(r), **row})
    table = pd.DataFrame(rows)
    table.columns = pd.MultiIndex.from_tuples([("", "Architecture"), ("", "Seeds"), ("", "Kernels"), ("", "Maps"),
                                               ("Test (%)", "trained"), ("Test (%)", "shrunk"), ("", "Params"),
                                               ("Step (ms)", "trained"), ("Step (ms)", "shrunk"),
                                               ("", "Logit diff.")])
    return booktabs(table, caption, "tab:learned-shrunk", "llllrrrrrr", raw=tuple(table.columns), size=r"\scriptsize",
                    groups=f.lstats["label"].reset_index(drop=True), colsep="2pt")


def interval(v) -> str:
    """'+0.1 [$-$1.5, 1.7]' in points, the estimate alone without an interval, '' without an estimate."""
    if pd.isna(v.estimate):
        return ""
    text = signed(percent(v.estimate))
    return text if pd.isna(v.lo) else f"{text} [{signed(percent(v.lo))}, {signed(percent(v.hi))}]"


def said(v, words: str) -> str:
    """A verdict's interval, then its words; the words alone where it has no estimate (e.g. an untried size)."""
    return f"{interval(v)}: {words}" if interval(v) else words


def verdict_table(run: Run) -> str:
    f = frames(run)
    done = f.lstats[f.lstats["seeds"] > 0] if len(f.lstats) else f.lstats
    found = [v for r in done.itertuples() for v in verdicts_of(r, f.sweep, f.scells, run.margins)]
    kinds = {name: kind_phrase(v.kind for v in found if v.key.endswith(f"/{name}")) for name in ("kernel", "vs-best",
                                                                                                   "step")}
    several = len(set(done["unit"])) > 1 if len(done) else False
    sized = any(v.key.endswith("/kernel") for v in found)  # a learned kernel size the grid holds
    caption = (f"{'Every setup' if several else 'The learned study'}'s verdicts on its learned networks. "
               + (f"Size: the grid's accuracy at the learned kernel size minus its best one convolution per block, in "
                  f"points [{kinds['kernel']}]. " if sized else "")
               + f"Accuracy: the shrunk network minus the grid's most accurate, in points [{kinds['vs-best']}]. Step: "
               f"shrunk over trained training step ({kinds['step']}: a spread of the repeats, which decides no "
               f"direction). Cost: the grid's wall-clock time over one learned run (one seed of the grid / the whole "
               f"grid).")
    if done.empty:
        return placeholder(caption, "tab:learned-verdicts", "No network of the learned study finished in this run.")
    cost = costs(f).set_index(["unit", "arch"])
    rows = []
    for r in done.itertuples():
        v = {x.key.rsplit("/", 1)[1]: x for x in verdicts_of(r, f.sweep, f.scells, run.margins)}
        size = v.get("kernel")
        rows.append({
            "Architecture": tt(r.arch),
            "Size": said(size, f"{verdict_word(size)} ({tt(size.reference)})") if size else "--",
            "Accuracy": said(v["vs-best"], f"{verdict_word(v['vs-best'])} {tt(v['vs-best'].reference)}")
            if "vs-best" in v else "--",
            "Step": (f"{ratio(v['step'].estimate)} ({ratio(v['step'].lo)}--{ratio(v['step'].hi)})"
                     if "step" in v else "--"),
            "Cost": (f"{ratio(cost.loc[(r.unit, r.arch), 'one'])} / {ratio(cost.loc[(r.unit, r.arch), 'whole'])}"
                     if (r.unit, r.arch) in cost.index else "--")})
    table = pd.DataFrame(rows) if sized else pd.DataFrame(rows).drop(columns="Size")
    return booktabs(table, caption, "tab:learned-verdicts",
                    f"l{ragged(0.28) * (1 + sized)}rr",
                    raw=("Architecture", "Size", "Accuracy"), size=r"\scriptsize",
                    groups=done["label"].reset_index(drop=True), colsep="3pt")

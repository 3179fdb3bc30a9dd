"""The activation study's tables: the verdicts (main text), and per cell the accuracies and gaps over seeds and the
cost of each variant (appendix). Times per variant are the figure activation_time's, not a table's."""
from __future__ import annotations

import pandas as pd

from convbench.analysis.activation import data
from convbench.analysis.activation.verdicts import accuracy_family, cost_ratios, family_phrase, seeds_text, verdicts
from convbench.analysis.formatting import (
    beside,
    kind_phrase,
    margin_text,
    percent,
    pm,
    ratio,
    setup_rank,
    sig3,
    signed,
    thousands,
    tt,
    words,
)
from convbench.analysis.latex import booktabs, placeholder
from convbench.analysis.stats import LEVEL, Outcome
from convbench.analysis.study import Run

MIB = 2**20
CI = f"{LEVEL * 100:.0f}\\,\\%"


def mib(x) -> str:
    return sig3(x / MIB) if pd.notna(x) else "--"


def interval(v) -> str:
    """'estimate [lo, hi]' as the verdict's unit prints it, the ends with the digits that show on which side of the
    margin they lie (formatting.beside); bold where the interval lies wholly beyond the margin."""
    if v.unit == "ratio":
        fmt, end = ratio, lambda x: beside(x, (v.margin, 1 / v.margin))
    else:
        fmt, end = (lambda x: signed(percent(x))), (lambda x: signed(beside(x, (v.margin, -v.margin), 1, 100)))
    text = f"{fmt(v.estimate)} [{end(v.lo)}, {end(v.hi)}]" if end(v.lo) != end(v.hi) else \
        f"{fmt(v.estimate)} (no spread)"  # every seed pair's difference the same: an interval of no width
    return text if v.outcome in (Outcome.UNDECIDED, Outcome.EQUIVALENT) else f"\\textbf{{{text}}}"


def verdict_table(run: Run) -> str:
    found = verdicts(run)
    points, times = ([v for v in found if v.unit == unit] for unit in ("points", "ratio"))
    holm = family_phrase(accuracy_family(run.tidy)) if found else "its comparisons"
    growth = any(v.key.endswith("/gap-change-diff") for v in found)
    caption = ("Each maxout variant against its ReLU network, per setup (accuracy where the setup trained "
               "replicates). Test accuracy"
               + (" (largest fraction) and gap growth (largest to smallest fraction)" if growth else "")
               + f": the mean of the per-seed differences maxout minus ReLU, in points, with its {CI} "
               f"{kind_phrase(v.kind for v in points)} over {holm}, in brackets"
               f"{'; the gap over the seeds where every run converged' if growth else ''}. Time: ratio to ReLU's, "
               f"{CI} {kind_phrase(v.kind for v in times)}. Bold: the whole interval lies beyond the margin "
               f"({margin_text(run.margins)}). Params, saved: ratios to ReLU's parameters (of the networks as "
               f"trained) and bytes kept for the backward pass.")
    if not found:
        return placeholder(caption, "tab:activation-verdicts",
                           "This run has no maxout variant measured against ReLU.")
    costs = cost_ratios(run).set_index(["unit", "arch"])
    units = {v.key.split("/")[1] for v in found if v.key.count("/") == 3}  # not the headlines
    stats = data.seed_stats(run.tidy)
    times = data.time_ratios(run.tidy, run.samples)
    labels = dict(zip(pd.concat([stats["unit"], times["unit"]]), pd.concat([stats["Label"], times["Label"]])))
    columns = [("", "Variant"), ("Test accuracy", "vs ReLU (points)"), ("Gap growth", "vs ReLU (points)"),
               ("Time / ReLU", "forward"), ("Time / ReLU", "backward"), ("/ ReLU", "params"), ("/ ReLU", "saved")]
    suffixes = ["test-accuracy-diff", "gap-change-diff", "forward-ratio", "backward-ratio"]
    if not growth:  # one training fraction: no growth to show
        del columns[2], suffixes[1]
    rows, groups = [], []
    for unit in sorted(units, key=setup_rank):
        for v in data.compared(run.tidy).itertuples():
            mine = {s: x for x in found if x.key.split("/")[1] == unit and x.subject == v.arch
                    for s in suffixes if x.key.endswith("/" + s)}
            if not mine:
                continue
            cost = costs.loc[(unit, v.arch)] if (unit, v.arch) in costs.index else None
            rows.append([tt(v.arch), *(interval(mine[s]) if s in mine else "--" for s in suffixes),
                         *(ratio(cost[c]) if cost is not None and pd.notna(cost[c]) else "--"
                           for c in ("params", "saved"))])
            groups.append(labels.get(unit, unit))
    table = pd.DataFrame(rows, columns=pd.MultiIndex.from_tuples(columns))
    return booktabs(table, caption, "tab:activation-verdicts", "l" + "r" * (len(columns) - 1), raw=tuple(columns),
                    size=r"\footnotesize", groups=pd.Series(groups), colsep="3pt")


def gap_table(run: Run) -> str:
    """The train/test gap, maxout minus ReLU, at each training fraction (verdicts.gap_verdicts)."""
    found = [v for v in verdicts(run) if "/gap-diff-f" in v.key]
    several = len({v.key.rsplit("-f", 1)[1] for v in found}) > 1
    caption = (f"Overfitting{' against the size of the training set' if several else ''}: the train/test gap of each "
               f"maxout variant minus its ReLU network's{' at each fraction of the training split' if several else ''}"
               f", in points: the mean of the per-seed "
               f"differences over the seeds where both runs converged, with its {CI} "
               f"{kind_phrase(v.kind for v in found)} over this table's {len(found)} comparisons (a family of their "
               f"own, apart from Table~\\ref{{tab:activation-verdicts}}'s), in brackets. Bold: the whole "
               f"interval lies beyond the margin ({margin_text(run.margins, ('accuracy',))}).")
    if not found:
        return placeholder(caption, "tab:activation-gaps", "This run has no gap of a maxout variant and its ReLU "
                                                            "network on the same seeds.")
    stats = data.seed_stats(run.tidy)
    labels = dict(zip(stats["unit"], stats["Label"]))
    cells = pd.DataFrame([{"unit": v.key.split("/")[1], "Variant": tt(v.subject),
                           "fraction": float(v.key.rsplit("-f", 1)[1]), "cell": interval(v)} for v in found])
    table = cells.pivot_table(index=["unit", "Variant"], columns="fraction", values="cell", aggfunc="first",
                              sort=False).fillna("--")
    table = table[sorted(table.columns)].rename(columns=lambda f: f"{f:g}%")
    table = table.reset_index()
    groups = table.pop("unit").map(lambda u: labels.get(u, u))
    return booktabs(table, caption, "tab:activation-gaps", "l" + "r" * (len(table.columns) - 1),
                    raw=tuple(table.columns), size=r"\footnotesize", groups=groups, colsep="3pt")


def diverged_runs(stats: pd.DataFrame) -> str:
    """'maxout2-eqwidth in PyTorch eager (3 of 6 runs)' for every unit x arch with diverged runs."""
    runs = stats.groupby(["unit", "Unit", "arch"], sort=False)[["diverged", "trained"]].sum().reset_index()
    runs = runs[runs["diverged"] > 0]
    return words(f"{tt(r.arch)} in {r.Unit} ({int(r.diverged)} of {int(r.trained)} runs)" for r in runs.itertuples())


def seeds_cell(s: pd.DataFrame) -> str:
    """The seeds a row's means are over: '2', or '1 of 2' where some runs did not converge."""
    used, trained = seeds_text(s["seeds"]), seeds_text(s["trained"])
    return used if used == trained else f"{used} of {trained}"


def accuracy_table(run: Run) -> str:
    df = run.tidy
    stats, growth = data.seed_stats(df), data.gap_growth(df)
    several = len(stats) and stats["train_fraction"].nunique() > 1
    caption = (f"Activation study: test accuracy{' at the largest training fraction' if several else ''}, in percent, "
               f"and the train/test gap (train minus test accuracy, in points)"
               f"{' at each fraction of the training split' if several else ''}, per setup: "
               f"mean\\,$\\pm$\\,half-width of the {CI} $t$ interval over the seeds whose run converged, as in the "
               f"comparisons (Seeds: those, of the seeds trained; Table~\\ref{{tab:accuracy}} takes the median over "
               f"every run)."
               + (" Change: the gap at the smallest fraction minus the gap at the largest, seed by seed." if several
                  else ""))
    if stats.empty:
        return placeholder(caption, "tab:activation-accuracy", "This run trained no network of the activation study.")
    fractions = sorted(stats["train_fraction"].unique())
    gap = "Train/test gap (points)"
    rows, groups = [], []
    for unit in sorted(set(stats["unit"]), key=setup_rank):
        for v in data.variants(df).itertuples():
            s = stats[(stats["unit"] == unit) & (stats["arch"] == v.arch)].set_index("train_fraction")
            if s.empty:
                continue
            row = {("", "Variant"): tt(v.arch), ("", "Seeds"): seeds_cell(s)}
            full = s.loc[fractions[-1]] if fractions[-1] in s.index else None
            row[("Test (%)", f"{100 * fractions[-1]:g}%")] = pm(full.test, full.test_ci) if full is not None else "--"
            for f in fractions:
                row[(gap, f"{100 * f:g}%")] = pm(s.loc[f, "gap"], s.loc[f, "gap_ci"]) if f in s.index else "--"
            if len(fractions) > 1:
                g = growth[(growth["unit"] == unit) & (growth["arch"] == v.arch)]
                row[(gap, "change")] = pm(g["change"].iloc[0], g["change_ci"].iloc[0]) if len(g) else "--"
            rows.append(row)
            groups.append(s["Unit"].iloc[0])
    table = pd.DataFrame(rows)
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    notes = []
    if (stats["seeds"] == 1).any():
        notes.append("A mean over one seed has no interval and is shown alone.")
    if any(percent(ci) == "0.0" for ci in pd.concat([stats["test_ci"], stats["gap_ci"]]).dropna()):
        notes.append("A half-width of 0.0: every seed gave the same value to the test set's resolution, which is no "
                     "evidence that another seed would.")
    if diverged_runs(stats):
        notes.append(f"Diverged runs (final training loss not finite) count with the accuracy they ended at: "
                     f"{diverged_runs(stats)}.")
    return booktabs(table, caption, "tab:activation-accuracy", "lr" + "r" * (len(table.columns) - 2),
                    raw=tuple(table.columns), size=r"\footnotesize", groups=pd.Series(groups),
                    note=" ".join(notes) or None)


def memory_note(df: pd.DataFrame) -> str:
    """What Saved and Peak hold, and where a dash stands for a framework or device that cannot measure it."""
    speed = data.with_units(data.cells(df, "speed")[lambda d: d["status"] == "ok"], df)
    names = dict(zip(speed["unit"], speed["Unit"]))
    lacking = {m: [u for u in sorted(names, key=setup_rank) if u not in set(speed.loc[speed["metric"] == m, "unit"])]
               for m in ("saved_bytes", "peak_bytes")}
    saved, peak = lacking["saved_bytes"], lacking["peak_bytes"]
    if not names:
        return ""
    if len(saved) == len(names):
        text = ["No cell recorded the bytes kept for the backward pass."]
    else:  # TensorFlow has no hook on the tensors its tape keeps
        why = ", which has no such hook" if all(u.startswith("tensorflow-") for u in saved) else ""
        text = ["Saved: the bytes the forward pass keeps for the backward pass, counted through saved-tensor hooks, in "
                "MiB" + (f"; a dash in {words(names[u] for u in saved)}{why}" if saved else "") + "."]
    text.append("Peak memory is recorded on GPUs only; no cell of this run recorded it." if len(peak) == len(names) else
                "Peak: the device's peak memory in a training step, in MiB" + ("; a dash where not recorded" if peak
                                                                              else "") + ".")
    return " ".join(text)


def cost_table(run: Run) -> str:
    df = run.tidy
    caption = ("Cost of the variants of the activation study, per setup: $k$ (maxout pieces; ReLU: 1), how a variant "
               "matches ReLU, parameters and forward MFLOPs per example of the timed network, the maps leaving each "
               "block, and memory. Figure~\\ref{fig:activation_time} shows the times.")
    rows = data.cells(df, "speed") if len(df) else df
    if rows.empty:
        return placeholder(caption, "tab:activation-cost", "This run timed no cell of the activation study.")
    speed = data.with_units(rows.drop_duplicates("cell_id"), df)
    memory = {m: data.memory(df, m) for m in ("saved_bytes", "peak_bytes")}
    out, groups = [], []
    for unit in sorted(set(speed["unit"]), key=setup_rank):
        for v in data.variants(df).itertuples():
            cell = speed[(speed["unit"] == unit) & (speed["arch"] == v.arch)]
            if cell.empty:
                continue
            c = cell.iloc[0]
            row = {"Variant": tt(v.arch), "k": str(v.k), "Matching": data.MATCHING[v.matching],
                   "Params": thousands(c.params), "MFLOPs": sig3(c.flops / 1e6) if pd.notna(c.flops) else "--",
                   "Maps": v.maps}
            if (cell["status"] == "failed").all():
                row["Matching"] += r" (\emph{failed})"
            for metric, column in [("saved_bytes", "Saved"), ("peak_bytes", "Peak")]:
                m = memory[metric]
                row[column] = mib(m.loc[(m["unit"] == unit) & (m["arch"] == v.arch), "value"].max())
            out.append(row)
            groups.append(c.Unit)
    table = pd.DataFrame(out)
    if (table["Peak"] == "--").all():
        table = table.drop(columns="Peak")
    return booktabs(table, caption, "tab:activation-cost", "lrlrrl" + "r" * (len(table.columns) - 6),
                    raw=("Variant", "Matching"), size=r"\footnotesize", groups=pd.Series(groups),
                    note=memory_note(df) or None)

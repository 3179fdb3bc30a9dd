"""The kernel study's tables: its stack pairs (main text), and every timed and every trained cell of the run, of all
studies, one row each (the appendix)."""
from __future__ import annotations

import pandas as pd

from convbench.analysis.formatting import escape, kind_phrase, ms, percent, ratio, setup_label, setup_rank, signed, tt
from convbench.analysis.kernel.values import Pair, accuracy_verdicts, comparisons, pair_verdicts
from convbench.analysis.latex import blank_repeats, booktabs, flagged, noisy_note, placeholder
from convbench.analysis.query import (
    ARCH_ORDER,
    by_setup,
    convergence,
    datasets,
    full_data,
    setup_labels,
    summarise,
    with_config,
)
from convbench.analysis.stats import Verdict
from convbench.analysis.study import Run


def cells_in_order(df: pd.DataFrame, task: str) -> pd.DataFrame:
    """One row per study x arch x setup x config of a task, failed cells included, in the tables' order."""
    cells = with_config(df[df["task"] == task]).drop_duplicates(["study", "arch", "setup", "config"])
    return cells.sort_values(["study", *ARCH_ORDER, "setup", "config"], kind="stable", key=by_setup)


def speed(run: Run) -> str:
    caption = ("Time per training step and phase, in ms: median (interquartile range) over the timed repeats; "
               "sum = forward + backward + optimizer of the same repeat, step = a whole step timed on its own; "
               "roof = useful FLOPs of a step over the step's median, as a percentage of what the device's roof (the "
               "best GEMM and copy any framework measured on it) allows at its arithmetic intensity "
               "(Figure~\\ref{fig:roofline}). "
               "A cell that failed shows \\emph{failed} in its place.")
    df = run.tidy[run.tidy["task"] == "speed"] if len(run.tidy) else run.tidy
    times = summarise(df, "time") if len(df) else df
    if times.empty:
        return placeholder(caption, "tab:speed", "This run has no timed cells.")
    times = times.assign(cell=[flagged(ms(v, i), noisy)
                               for v, i, noisy in zip(times["value"], times["iqr"], times["noisy"])])
    keys = ["study", "arch", "setup", "config"]
    table = times.pivot_table(index=keys, columns="phase", values="cell", aggfunc="first", sort=False)
    phases = [p for p in ["forward", "backward", "optimizer", "total", "step"] if p in table.columns]
    phases += [p for p in table.columns if p not in phases]  # phases a new harness adds
    table = table[phases].rename(columns={"total": "sum"})
    roof = summarise(df, "ceiling_fraction")
    if len(roof):
        table["roof %"] = roof.set_index(keys)["value"].map(percent)
    cells = cells_in_order(df, "speed")
    index = pd.MultiIndex.from_frame(cells[keys])
    table = table.reindex(index).fillna("--")
    table.loc[~index.isin(table.index.intersection(times.set_index(keys).index))] = r"\emph{failed}"
    table = table.reset_index().assign(Setup=setup_labels(cells.reset_index(drop=True)).to_numpy())
    columns = list(table.columns[len(keys):-1])
    studies = table["study"]
    table = blank_repeats(table[["study", "arch", "Setup", *columns]], ["study", "arch"]).drop(columns="study")
    return booktabs(table.rename(columns={"arch": "Architecture"}), caption, "tab:speed", "ll" + "r" * len(columns),
                    raw=tuple(columns), size=r"\scriptsize", groups=studies, note=noisy_note(times), colsep="2pt")


def accuracy(run: Run) -> str:
    caption = ("Accuracy after the last epoch, in percent: train and test accuracy and their gap "
               "(train minus test, percentage points); median over seeds, at each study's largest training fraction"
               " (the whole training split unless a column says otherwise).")
    df = full_data(run.tidy) if len(run.tidy) else run.tidy
    metrics = {m: summarise(df, m) if len(df) else df for m in ["train_accuracy", "test_accuracy", "gap"]}
    if metrics["test_accuracy"].empty:
        return placeholder(caption, "tab:accuracy", "This run has no training cells.")
    keys = ["study", "arch", "setup", "framework", "engine", "config", "dataset", "train_fraction"]
    table = metrics["test_accuracy"][keys + ["seeds", "train_size"]].copy()
    for metric, name in [("train_accuracy", "Train"), ("test_accuracy", "Test"), ("gap", "Gap")]:
        table = table.merge(metrics[metric][keys + ["value"]].rename(columns={"value": name}), on=keys, how="left")
        table[name] = table[name].map(lambda v: percent(v) if pd.notna(v) else "--")
    table["Setup"] = setup_labels(table)
    columns = ["study", "arch", "Setup", "Train", "Test", "Gap"]
    if table["dataset"].nunique() > 1:  # each data set's runs apart
        table["Setup"] = table["Setup"] + ", " + datasets(table)
    if table["seeds"].max() > 1:
        columns.append("seeds")
    if table["train_size"].nunique() > 1:
        columns.append("train_size")
    if (table["train_fraction"] < 1).any():
        table["train_fraction"] = table["train_fraction"].map(lambda f: f"{100 * f:g}%")
        columns.append("train_fraction")
    studies = table["study"]
    table = blank_repeats(table[columns], ["study", "arch"]).drop(columns="study").rename(
        columns={"arch": "Architecture", "seeds": "Seeds", "train_size": "Train size", "train_fraction": "Fraction"})
    return booktabs(table, caption, "tab:accuracy", "ll" + "r" * (len(columns) - 3), groups=studies)


def with_range(x: tuple[float, float, float] | None) -> str:
    return f"{ratio(x[0])} ({ratio(x[1])}--{ratio(x[2])})" if x else "--"


def paired(v: Verdict | None) -> str:
    """A paired difference as 'estimate (lo, hi)' in points, '--' without a verdict."""
    if v is None:
        return "--"
    return f"{signed(percent(v.estimate))} ({signed(percent(v.lo))}, {signed(percent(v.hi))})"


def pair_row(p: Pair, found: dict[str, Verdict]) -> dict:
    return {"Single": tt(p.a), "Stack": tt(p.b), "Params": ratio(p.params) if p.params is not None else "--",
            "Forward": with_range(p.ratios.get("forward")), "Backward": with_range(p.ratios.get("backward")),
            "Step": with_range(p.ratios.get("step")),
            "Test": paired(found.get(f"{p.diff_key}/test-accuracy-diff")),
            "Gap": paired(found.get(f"{p.diff_key}/gap-diff")), "Seeds": str(len(p.test_diffs) or "--")}


def pairs(run: Run) -> str:
    found = comparisons(run)
    times = pair_verdicts(found, run.margins)
    diffs = accuracy_verdicts(found, run.margins)
    caption = ("One $k\\times k$ convolution per block (single) against the stack of smaller convolutions with the "
               "same receptive field: the single's parameters over the stack's, time of the single over the stack's "
               f"per phase (ratio, {kind_phrase(v.kind for v in times)} in parentheses), and single minus stack in test "
               f"accuracy and train/test gap (points: mean of the per-seed differences, {kind_phrase(v.kind for v in diffs)}; "
               "the gap over the seeds where both runs converged; seeds: pairs of replicate runs).")
    if not found:
        return placeholder(caption, "tab:kernel-pairs", "No single kernel and stack of the same receptive field "
                                                        "both have results in this run.")
    found = sorted(found, key=lambda p: setup_rank(p.slug))  # stable: the pairs' order within a setup
    verdicts = {v.key: v for v in accuracy_verdicts(found, run.margins)}
    table = pd.DataFrame([pair_row(p, verdicts) for p in found])
    time, diff = "Time, single / stack", "Single minus stack (points)"
    table.columns = pd.MultiIndex.from_tuples([(time, c) if c in ("Forward", "Backward", "Step") else
                                               (diff, c) if c in ("Test", "Gap") else ("", c) for c in table.columns])
    return booktabs(table, caption, "tab:kernel-pairs", "ll" + "r" * 7, raw=(("", "Single"), ("", "Stack"), (diff, "Test"), (diff, "Gap")),
                    size=r"\scriptsize", colsep="2pt", groups=pd.Series([p.label for p in found]))


def unconverged(run: Run) -> str:
    caption = ("Training runs that did not converge, of every study: stopped at the epoch cap before the plateau "
               "criterion held (cap), or ended with a train accuracy that has not left chance (chance). A seed with "
               "such a run is left out of every paired comparison, of accuracy and of train/test gap.")
    c = convergence(run.tidy)
    c = c[c["converged"] == 0]
    if c.empty:
        return placeholder(caption, "tab:unconverged", "Every training run whose record says so converged.")
    c = c.sort_values(["study", "arch", "setup", "train_fraction", "seed"], kind="stable", key=by_setup)
    table = pd.DataFrame({"Study": c["study"], "Architecture": c["arch"],
                          "Setup": [escape(setup_label(f, e)) for f, e in zip(c["framework"], c["engine"])],
                          "Role": c["role"].fillna("--"), "Fraction": [f"{100 * f:g}\\%" for f in c["train_fraction"]],
                          "Seed": c["seed"].astype(int).astype(str), "Epochs": c["epochs"].map(lambda e: f"{e:.0f}"),
                          "Outcome": ["chance" if a == 1 else "cap" for a in c["at_chance"]]})
    return booktabs(table, caption, "tab:unconverged", "llllrrrl", raw=("Setup", "Fraction"), size=r"\footnotesize")

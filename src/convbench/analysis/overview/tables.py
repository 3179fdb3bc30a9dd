"""The run's tables: every architecture with its counts, the environment per framework, the failed cells; and every
timed and every trained cell of all studies, one row each, and the runs that did not converge (the appendix)."""
from __future__ import annotations

import pandas as pd

from convbench.analysis.formatting import (
    NOT_RESOLVED_MARK,
    NOT_RESOLVED_NOTE,
    escape,
    framework_name,
    ms,
    percent,
    setup_label,
    sig3,
    thousands,
    tt,
    words,
)
from convbench.analysis.latex import blank_repeats, booktabs, flagged, noisy_note, placeholder, ragged
from convbench.analysis.query import (
    ARCH_ORDER,
    by_setup,
    convergence,
    datasets,
    full_data,
    setup_labels,
    summarise,
    with_config,
    with_scales,
)
from convbench.analysis.records import LAYER_TASK
from convbench.analysis.study import Run
from convbench.data import NUM_CLASSES, PLANTED_CLASSES


def architectures(run: Run) -> str:
    df = run.tidy
    trained = sorted({str(d) for d in datasets(df[df["task"] == "train"]) if d}) if len(df) else []
    classes = words(f"{tt(d)} has {PLANTED_CLASSES if d == 'planted' else NUM_CLASSES}" for d in trained)
    caption = ("Architectures: blocks (stack depth x kernel / filters, activation), parameters and forward MFLOPs per "
               "example, counted from the spec in closed form for each task's inputs (channels x height x width) and "
               f"classes (a timed cell's: 10; a train cell's: its data set's{': ' + classes if classes else ''}).")
    counts = df[df["params"].notna() & (df["task"] != LAYER_TASK)]
    counts = counts.assign(inputs=counts["task"] + [f", {d}" if t == "train" and d else ""
                                                    for t, d in zip(counts["task"], datasets(counts))])
    counts = counts.drop_duplicates(["study", "arch", "inputs"])
    if counts.empty:
        return placeholder(caption, "tab:architectures", "No cell of this run recorded parameter counts.")
    archs = counts.drop_duplicates(["study", "arch"]).sort_values(["study", *ARCH_ORDER])
    table = archs.set_index(["study", "arch"])[["description"]]
    for task, rows in counts.groupby("inputs", sort=True):
        shapes = {f"{c:.0f}x{s:.0f}x{s:.0f}" for c, s in zip(rows["in_channels"], rows["image_size"])}
        top = f"{task}, {shapes.pop()}" if len(shapes) == 1 else task
        rows = rows.set_index(["study", "arch"])
        table[(top, "Params")] = rows["params"].map(thousands)
        table[(top, "MFLOPs")] = rows["flops"].map(lambda f: sig3(f / 1e6) if pd.notna(f) else "--")
    table = table.fillna("--").reset_index()
    studies = table.pop("study")
    table.columns = pd.MultiIndex.from_tuples([("", "Architecture"), ("", "Blocks"), *table.columns[2:]])
    return booktabs(table, caption, "tab:architectures", "ll" + "r" * (len(table.columns) - 2), groups=studies)


def _recorded(value) -> bool:
    """A value some record holds: not missing, not empty."""
    return value is not None and pd.notna(value) and str(value) not in ("", "[]", "{}")


def environment(run: Run) -> str:
    """One column per framework; a row per environment field (whatever the records hold), distinct values joined."""
    env = run.environment
    caption = "Environment of the cells, per framework, as recorded by each cell."
    if env.empty:
        return placeholder(caption, "tab:environment", "No environment recorded.")
    # How each engine ran (optimizer, precision, warnings) is the fairness table's, per setup.
    fields = [c for c in env.columns
              if c not in ("cell_id", "framework", "engine", "status") and not c.startswith("engine.")]
    # Version columns of other frameworks are empty for a framework; keep only fields it has.
    table = {}
    for framework, rows in env.groupby("framework", sort=True):
        table[framework_name(framework)] = {
            f: "; ".join(sorted({_text(v, f) for v in rows[f] if _recorded(v)}, key=_natural)) for f in fields}
    table = pd.DataFrame(table).replace("", "--")
    if "started" in table.index:  # the run's time span, not every cell's start
        starts = sorted(str(v) for v in env["started"].dropna())
        table.loc["started"] = f"{starts[0]} to {starts[-1]}" if starts else "--"
    table = table.loc[~(table == "--").all(axis=1)].reset_index().rename(columns={"index": "Field"})
    table = table.map(lambda v: tt(v) if "_" in str(v) else escape(v))  # x86_64, intra_op: an underscore that stays
    align = ragged(0.2) + ragged(0.72 / (len(table.columns) - 1)) * (len(table.columns) - 1)
    return booktabs(table, caption, "tab:environment", align, size=r"\scriptsize",  # a whole commit hash fits
                    raw=tuple(table.columns))


VERSIONS = ("versions.", "python", "numpy", "convbench")  # fields whose '2.0' is a version, not a count


def _text(value, field: str = "") -> str:
    """A recorded value as the table prints it: a whole number the csv read back as a float (world size 2.0) as an
    integer, but never a version."""
    text = str(value)
    whole = text.endswith(".0") and text[:-2].lstrip("-").isdigit()
    return text[:-2] if whole and not field.startswith(VERSIONS) else text


def _natural(text: str):
    """Numbers in numeric order (2 before 10), then text."""
    return (0, float(text), "") if text.replace(".", "", 1).lstrip("-").isdigit() else (1, 0.0, text)


def failed(run: Run) -> str:
    """The failed cells with the last line of their error; empty when none failed (the text tests overview/failed)."""
    cells = run.tidy.drop_duplicates("cell_id")
    bad = cells[cells["status"] == "failed"]
    if bad.empty:
        return ""
    table = pd.DataFrame({"Cell": [tt(c) for c in bad["cell_id"]],
                          "Error": [escape(e) if isinstance(e, str) and e else "(no error text)" for e in bad["error"]]})
    return booktabs(table, "Failed cells and the last line of their error.", "tab:failed", ragged(0.42) + ragged(0.5),
                    raw=("Cell", "Error"), size=r"\footnotesize")


# ---- every cell of the run, of all studies, one row each (the appendix) -------------------------------------

def cells_in_order(df: pd.DataFrame, task: str) -> pd.DataFrame:
    """One row per study x arch x setup x config of a task, failed cells included, in the tables' order."""
    cells = with_config(df[df["task"] == task]).drop_duplicates(["study", "arch", "setup", "config"])
    return cells.sort_values(["study", *ARCH_ORDER, "setup", "devices", "batch_size", "config"], kind="stable",
                             key=by_setup)  # batches as numbers: 1, 8, 64, 256, not the config's 1, 256, 64, 8


def speed(run: Run) -> str:
    caption = ("Time per training step and phase, in ms: median (interquartile range) over the timed repeats; "
               "sum = forward + backward + optimizer of the same repeat (where the phases are differences of cumulative "
               "programs, the sum is the last program's time, which stands where a phase is not resolved), step = a "
               "whole step timed on its own; "
               "roof = useful FLOPs of a step over the step's median, as a percentage of what the device's roof (the "
               "best GEMM and copy any framework measured on it) allows at its arithmetic intensity "
               "(Figure~\\ref{fig:roofline}). "
               "A cell that failed shows \\emph{failed} in its place.")
    df = run.tidy[run.tidy["task"] == "speed"] if len(run.tidy) else run.tidy
    times = summarise(df, "time") if len(df) else df
    if times.empty:
        return placeholder(caption, "tab:speed", "This run has no timed cells.")
    keys = ["study", "arch", "setup", "config"]
    lost = unresolved_phases(df)
    times = times.assign(cell=[NOT_RESOLVED_MARK if key in lost else flagged(ms(v, i), noisy) for key, v, i, noisy in
                               zip(times[[*keys, "phase"]].itertuples(index=False, name=None), times["value"],
                                   times["iqr"], times["noisy"])])
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
    cells = cells.reset_index(drop=True)
    columns = list(table.columns)
    # the setup, and apart from it only what varies of the config (the batch, mostly): the table fits the page
    where = cells["device"].astype(str) + cells["devices"].astype(str) + "-" + cells["parallelism"].astype(str)
    config = (("Batch", cells["batch_size"].map(lambda b: f"{b:.0f}")) if where.nunique() == 1
              else ("Config", cells["config"]))
    table = table.reset_index().assign(Setup=[setup_label(f, e) for f, e in zip(cells["framework"], cells["engine"])],
                                       **{config[0]: config[1].to_numpy()})
    studies = table["study"]
    table = blank_repeats(table[["study", "arch", "Setup", config[0], *columns]], ["study", "arch", "Setup"])
    notes = [n for n in (noisy_note(times), lost and NOT_RESOLVED_NOTE) if n]
    return booktabs(table.drop(columns="study").rename(columns={"arch": "Architecture"}), caption, "tab:speed",
                    "llr" + "r" * len(columns), raw=tuple(columns), size=r"\scriptsize", groups=studies,
                    note=" ".join(notes) or None, colsep="2pt")




def unresolved_phases(df: pd.DataFrame) -> set[tuple]:
    """(study, arch, setup, config, phase) of every derived phase the tidy table marked not resolved (tidy.resolve)."""
    if "resolved" not in df or df.empty:
        return set()
    rows = with_config(df[(df["status"] == "ok") & (df["metric"] == "time")])
    rows = rows[rows["resolved"].map(lambda r: r is False or r == False)]  # noqa: E712 (read back from csv)
    return set(rows[["study", "arch", "setup", "config", "phase"]].itertuples(index=False, name=None))


def accuracy(run: Run) -> str:
    caption = ("Accuracy after the last epoch, in percent: train and test accuracy and their gap "
               "(train minus test, percentage points); median over seeds, at each study's largest training fraction"
               " (the whole training split unless a column says otherwise).")
    df = with_scales(full_data(run.tidy)) if len(run.tidy) else run.tidy
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
        table["train_size"] = table["train_size"].map(lambda n: f"{n:.0f}" if pd.notna(n) else "--")  # a count
        columns.append("train_size")
    if (table["train_fraction"] < 1).any():
        table["train_fraction"] = table["train_fraction"].map(lambda f: f"{100 * f:g}%")
        columns.append("train_fraction")
    studies = table["study"]
    table = blank_repeats(table[columns], ["study", "arch"]).drop(columns="study").rename(
        columns={"arch": "Architecture", "seeds": "Seeds", "train_size": "Train size", "train_fraction": "Fraction"})
    return booktabs(table, caption, "tab:accuracy", "ll" + "r" * (len(columns) - 3), groups=studies)


def unconverged(run: Run) -> str:
    caption = ("Training runs that did not converge, of every study: stopped at the epoch cap before the plateau "
               "criterion held (cap), or ended with a train accuracy that has not left chance (chance). A seed with "
               "such a run is left out of every paired comparison, of accuracy and of train/test gap.")
    c = convergence(with_scales(run.tidy)) if len(run.tidy) else convergence(run.tidy)
    c = c[c["converged"] == 0]
    if c.empty:
        return placeholder(caption, "tab:unconverged", "Every training run whose record says so converged.")
    c = c.sort_values(["study", "arch", "setup", "train_fraction", "seed"], kind="stable", key=by_setup)
    several = datasets(run.tidy[run.tidy["task"] == "train"]).replace("", None).nunique() > 1
    table = pd.DataFrame({"Study": c["study"], "Architecture": c["arch"],
                          "Setup": [escape(setup_label(f, e) + (f", {d}" if several and d else ""))
                                    for f, e, d in zip(c["framework"], c["engine"], datasets(c))],
                          "Role": c["role"].fillna("--"), "Fraction": [f"{100 * f:g}\\%" for f in c["train_fraction"]],
                          "Seed": c["seed"].astype(int).astype(str), "Epochs": c["epochs"].map(lambda e: f"{e:.0f}"),
                          "Outcome": ["chance" if a == 1 else "cap" for a in c["at_chance"]]})
    return booktabs(table, caption, "tab:unconverged", "llllrrrl", raw=("Setup", "Fraction"), size=r"\footnotesize")

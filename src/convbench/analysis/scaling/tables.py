"""The scaling study's per-cell tables (the paper's appendix): times, phases, bytes, crossover, straggler, the
tensor-over-data comparisons and the failed cells."""
from __future__ import annotations

import pandas as pd

from convbench.analysis.formatting import (
    NOT_RESOLVED_MARK,
    NOT_RESOLVED_NOTE,
    bracketed,
    kind_phrase,
    margin_text,
    ms,
    percent,
    plain,
    ratio,
    signed,
    thousands,
    tt,
)
from convbench.analysis.latex import blank_repeats, booktabs, placeholder, ragged
from convbench.analysis.scaling import crossover
from convbench.analysis.scaling import projection as pj
from convbench.analysis.scaling.cells import PARALLEL, PARALLELISM_NAMES, cells, comparisons, straggler_pairs
from convbench.analysis.scaling.values import setup_name
from convbench.analysis.stats import LEVEL
from convbench.analysis.study import Run

NONE = "No scaling cells ran in this run."
FAILED = r"\emph{failed}"



def interval_text(kinds) -> str:
    """The interval of the ratios a scaling table shows (analysis.scaling.cells.ratio_of), named by their kinds; ''
    where it shows none."""
    kinds = list(kinds)
    return f"[{LEVEL * 100:.0f}\\,\\% {kind_phrase(kinds)}]" if kinds else ""


def _cell_columns(rows: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "Network": rows["arch"].to_numpy(),
        "Scaling": rows["mode"].to_numpy(),
        "Parallelism": rows["parallelism"].to_numpy(),
        "t": rows["devices"].astype(int).astype(str).to_numpy(),
        "Batch": rows["global_batch"].astype(int).astype(str).to_numpy(),
    })


def _grouped(table: pd.DataFrame, rows: pd.DataFrame, columns=("Network", "Scaling")):
    groups = pd.Series([setup_name(s) for s in rows["setup"]])
    table = blank_repeats(table.assign(_g=groups.to_numpy()), ["_g", *columns]).drop(columns="_g")
    return table, groups


def times(run: Run) -> str:
    caption = ("Scaling: step and no-communication baseline in ms, median (IQR); efficiency = baseline / step; "
               "speed-up over the one-device cell, times the ratio of global batches. t: devices; batch: global.")
    df = cells(run)
    rows = df[df["straggler_ms"] == 0] if len(df) else df
    if rows.empty:
        return placeholder(caption, "tab:scaling-times", NONE)
    table = _cell_columns(rows)
    ok = (rows["status"] == "ok").to_numpy()
    table["Step"] = [ms(m, i) if good else FAILED for m, i, good in zip(rows["step"], rows["step_iqr"], ok)]
    table["Baseline"] = [ms(m, i) if good else "--" for m, i, good in zip(rows["base_step"], rows["base_step_iqr"], ok)]
    table["Efficiency"] = [ratio(e) if good and pd.notna(e) else "--" for e, good in zip(rows["efficiency"], ok)]
    table["Speed-up"] = [ratio(s) if good and pd.notna(s) else "--" for s, good in zip(rows["speedup"], ok)]
    table, groups = _grouped(table, rows)
    return booktabs(table, caption, "tab:scaling-times", "lllrr" + "r" * 4, raw=("Step",), size=r"\scriptsize",
                    groups=groups, colsep="3pt")


def phases(run: Run) -> str:
    caption = ("The phases of a parallel step in ms, median (IQR); the collectives of one step replayed alone; "
               "exposed: forward plus backward above the baseline's (PyTorch; a cell on one device has no "
               "collective to expose).")
    df = cells(run)
    rows = df[(df["straggler_ms"] == 0) & (df["status"] == "ok")] if len(df) else df
    if rows.empty:
        return placeholder(caption, "tab:scaling-phases", NONE if not len(df) else "No scaling cell ran successfully.")
    table = _cell_columns(rows)
    for phase, name in [("forward", "Forward"), ("backward", "Backward"), ("comm", "Comm. alone"),
                        ("optimizer", "Optimizer")]:
        ok = rows[f"{phase}_resolved"] if f"{phase}_resolved" in rows else pd.Series(True, index=rows.index)
        table[name] = [ms(m, i) if good else NOT_RESOLVED_MARK  # a derived phase the data cannot tell from zero
                       for m, i, good in zip(rows[phase], rows[f"{phase}_iqr"], ok)]
    table["Exposed"] = [signed(ms(x)) if p in PARALLEL else "--" for x, p in zip(rows["exposed"], rows["parallelism"])]
    lost = any(NOT_RESOLVED_MARK in str(x) for x in table.to_numpy().ravel())
    table, groups = _grouped(table, rows)
    return booktabs(table, caption, "tab:scaling-phases", "lllrr" + "r" * 5,
                    raw=("Forward", "Backward", "Comm. alone", "Optimizer", "Exposed"), size=r"\scriptsize",
                    groups=groups, colsep="3pt", note=NOT_RESOLVED_NOTE if lost else None)


def bytes_(run: Run) -> str:
    caption = ("Bytes of one step's collectives: the payload counted during a step against the closed-form model, "
               "the ring model's wire bytes per rank over the collectives each framework calls (backward, PyTorch's workers "
               "reduce-scatter each layer's maps; TensorFlow's all-gather has an all-reduce of the whole maps for "
               "gradient, twice a reduce-scatter's bytes), and on the CPU the host's loopback counter per step (all "
               "ranks, TCP/IP headers included) against the gloo model (gloo runs a reduce-scatter as an all-reduce).")
    df = cells(run)
    rows = df[df["parallelism"].isin(PARALLEL) & (df["straggler_ms"] == 0)] if len(df) else df
    if rows.empty:
        return placeholder(caption, "tab:scaling-bytes",
                           NONE if not len(df) else "No parallel scaling cell in this run.")
    table = _cell_columns(rows)
    ok = (rows["status"] == "ok").to_numpy()
    table["Payload"] = [thousands(p) if good else FAILED for p, good in zip(rows["payload"], ok)]
    table["Model"] = [thousands(p) if good else "--" for p, good in zip(rows["payload_model"], ok)]
    table["Equal"] = [("yes" if m else "no") if good and pd.notna(m) else "--" for m, good in zip(rows["match"], ok)]
    table["Wire/rank"] = [thousands(w) if good and pd.notna(w) else "--" for w, good in zip(rows["wire_model"], ok)]
    table["Loopback"] = [thousands(x) for x in rows["loopback"]]
    table["Gloo model"] = [thousands(x) for x in rows["loopback_model"]]
    table["Ratio"] = [ratio(a / b) if pd.notna(a) and pd.notna(b) and b else "--"
                      for a, b in zip(rows["loopback"], rows["loopback_model"])]
    table, groups = _grouped(table, rows)
    return booktabs(table, caption, "tab:scaling-bytes", "lllrr" + "r" * 7, raw=("Payload",), size=r"\scriptsize",
                    groups=groups, colsep="2.5pt")


def _widths_plain(widths: tuple, image_size: int) -> str:
    return f"{'/'.join(str(w) for w, *_ in widths[0])} filters, {image_size}x{image_size} inputs"


def crossover_table(run: Run) -> str:
    caption = ("The ring model's crossover per kernel size: parameters, data parallel's wire bytes per rank and "
               "step, tensor parallel's per example, and the largest global batch at which tensor parallel moves "
               "fewer bytes.")
    grid = crossover.grid(cells(run))
    if grid.empty:
        return placeholder(caption, "tab:scaling-crossover", NONE)
    t = grid["devices"].max()
    rows = grid[grid["devices"] == t].drop_duplicates(["config", "kernel"])
    table = pd.DataFrame({
        "Kernel": [f"{k}x{k}" for k in rows["kernel"]],
        "Parameters": [thousands(p) for p in rows["params"]],
        f"Data parallel (t = {t})": [thousands(d) for d in rows["data"]],
        "Tensor parallel per example": [thousands(d / c) for d, c in zip(rows["data"], rows["crossover"])],
        "Crossover batch": [str(crossover.crossover_batch(c)) for c in rows["crossover"]],
    })
    groups = pd.Series([_widths_plain(w, s) for w, s in zip(rows["widths"], rows["image_size"])])
    return booktabs(table, caption, "tab:scaling-crossover", "lrrrr", size=r"\small",
                    groups=groups if groups.nunique() > 1 else None)


def straggler(run: Run) -> str:
    pairs = straggler_pairs(cells(run), run)
    kinds = pairs.loc[pairs["status"] == "ok", "kind"] if len(pairs) else []
    caption = (f"A straggler: the last device sleeps the delay at the start of every step. Step medians in ms without "
               f"and with it, their ratio {interval_text(kinds)} and the time added per step.")
    if pairs.empty:
        return placeholder(caption, "tab:scaling-straggler", "No cell of this run delayed a device.")
    table = pd.DataFrame({
        "Network": pairs["arch"].to_numpy(), "Parallelism": pairs["parallelism"].to_numpy(),
        "t": pairs["devices"].astype(int).astype(str).to_numpy(),
        "Delay (ms)": [f"{s:g}" for s in pairs["straggler_ms"]],
        "Without": [ms(x) for x in pairs["plain_step"]],
        "With": [ms(x) if s == "ok" else FAILED for x, s in zip(pairs["step"], pairs["status"])],
        "Ratio": [bracketed(r, lo, hi) if s == "ok" else "--"
                  for r, lo, hi, s in zip(pairs["ratio"], pairs["lo"], pairs["hi"], pairs["status"])],
        "Added (ms)": [ms(a) for a in pairs["added"]],
    })
    table, groups = _grouped(table, pairs, ("Network",))
    return booktabs(table, caption, "tab:scaling-straggler", "llrrrrrr", raw=("With",), size=r"\small", groups=groups)


def verdicts(run: Run) -> str:
    v = comparisons(cells(run), run)
    kinds = [*v["backward_kind"], *v["step_kind"]] if len(v) else []
    caption = (f"Tensor parallel's time over data parallel's at the same devices and global batch: ratio "
               f"{interval_text(kinds)}; shorter: the scheme whose time was shorter with the whole interval beyond the "
               f"margin ({margin_text(run.margins, ('time',))}).")
    if v.empty:
        return placeholder(caption, "tab:scaling-verdicts", "No configuration of this run ran both data and tensor "
                                                            "parallel.")
    table = pd.DataFrame({
        "Network": v["arch"].to_numpy(), "Scaling": v["mode"].to_numpy(),
        "t": v["devices"].astype(int).astype(str).to_numpy(),
        "Batch": v["global_batch"].astype(int).astype(str).to_numpy()})
    for phase, name in [("backward", "Backward"), ("step", "Step")]:
        table[name] = [bracketed(r, lo, hi) if pd.notna(r) else NOT_RESOLVED_MARK for r, lo, hi in
                       zip(v[f"{phase}_ratio"], v[f"{phase}_lo"], v[f"{phase}_hi"])]
        table[f"{name}: shorter"] = [PARALLELISM_NAMES[s].split()[0] if s else "--" for s in v[f"{phase}_shorter"]]
    lost = (table["Backward"] == NOT_RESOLVED_MARK).any() or (table["Step"] == NOT_RESOLVED_MARK).any()
    table, groups = _grouped(table, v)
    return booktabs(table, caption, "tab:scaling-verdicts", "llrrrlrl", size=r"\small", groups=groups,
                    raw=("Backward", "Step"), note=NOT_RESOLVED_NOTE if lost else None)


def failed(run: Run) -> str:
    """The failed cells grouped by the last line of their error; a comment where none failed (the text refers to
    this table only under \\ifcb{scaling/failed-any})."""
    df = cells(run)
    bad = df[df["status"] != "ok"] if len(df) else df
    if bad.empty:
        return "% no scaling cell failed\n"
    groups = bad.groupby(bad["error"].fillna("(no error text)"), sort=False)
    table = pd.DataFrame({
        "Cells": [r" \newline ".join(tt(c) for c in g["cell_id"]) for _, g in groups],
        "Error (last line)": [plain(line) for line, _ in groups]})
    return booktabs(table, "Scaling cells that failed, grouped by the last line of their error.", "tab:scaling-failed",
                    ragged(0.5) + ragged(0.42), raw=("Cells", "Error (last line)"), size=r"\scriptsize")


def projection_check(run: Run) -> str:
    caption = ("The step model against this run's measured PyTorch CPU cells (gloo processes): measured step median "
               "and the model's prediction in ms; the error in percent, predicted / measured $-$ 1, with and without "
               "the per-step overhead term (from the overhead study's fit of step = $a + b\\times$batch); and where "
               "the miss lies: the cell's measured no-communication baseline (each device alone on its share) beside "
               "the model's computation, and the step's time above that baseline beside the communication the model "
               "exposes. Measured: the cells; predicted: the model, from layer-wise times, the one-device step, the "
               "overhead fit and the alpha-beta fit to the replayed collectives.")
    checked, _, _ = pj.check(run)
    if checked.empty:
        return placeholder(caption, "tab:scaling-projection-check", "No PyTorch CPU scaling cell with layer-wise "
                                                                    "times and replayed collectives in this run.")
    table = _cell_columns(checked)
    parallel = checked["parallelism"].isin(PARALLEL).to_numpy()
    table["Measured"] = [ms(x) for x in checked["measured"]]
    table["Predicted"] = [ms(x) for x in checked["predicted"]]
    table["Error"] = [signed(percent(e)) for e in checked["error"]]
    table["W/o overhead"] = [signed(percent(e)) for e in checked["error_without_overhead"]]
    table["Baseline"] = [ms(x) for x in checked["baseline"]]
    table["Model compute"] = [ms(x) for x in checked["compute"]]
    table["Above baseline"] = [signed(ms(x)) if p else "--" for x, p in zip(checked["above_baseline"], parallel)]
    table["Model comm."] = [ms(x) if p else "--" for x, p in zip(checked["exposed"], parallel)]
    table, groups = _grouped(table, checked)
    return booktabs(table, caption, "tab:scaling-projection-check", "lllrr" + "r" * 8,
                    raw=("Error", "W/o overhead", "Above baseline"), size=r"\scriptsize", groups=groups, colsep="3pt")


def projection_table(run: Run) -> str:
    caption = ("Projection, not measurement: efficiency of data and tensor parallel on several GPUs of the committed "
               "reference run, from its single-GPU records and the config's links; strong scaling keeps the speed "
               "cells' batch as the global batch, weak scaling gives it to every GPU. Crossover: the largest global "
               "batch searched at which tensor parallel's projected step is the shorter.")
    rows, why = pj.projected(run)
    if rows.empty:
        return placeholder(caption, "tab:scaling-projection", f"Nothing projected: {why}.")
    grid = rows[rows["mode"] != "sweep"]
    wide = grid.pivot_table(index=["kernel", "devices", "nodes"], columns=["parallelism", "mode"], values="efficiency")
    cross = pj.crossover(rows)
    table = pd.DataFrame({
        "Kernel": [f"{k}x{k}" for k, _, _ in wide.index], "GPUs": [str(p) for _, p, _ in wide.index],
        "Nodes": [str(n) for *_, n in wide.index]})
    for parallelism in PARALLEL:
        for mode in ("strong", "weak"):
            table[f"{parallelism.capitalize()}, {mode}"] = [ratio(x) for x in wide[(parallelism, mode)]]
    table["Crossover"] = [str(cross.get(k) or "none") for k, *_ in wide.index]
    table = blank_repeats(table, ["Kernel", "Crossover"]) if len(table) else table
    return booktabs(table, caption, "tab:scaling-projection", "lrr" + "r" * 5, size=r"\small")

"""The scaling study's cells: one row per scaling cell, read back from the tidy table, with efficiency and speed-up.

- efficiency = the no-communication baseline's step median / the parallel step median (the baseline: every device
  alone on its share, the same shapes and FLOPs, no collectives), with a quartile-based range;
- speed-up = (global batch / reference's global batch) x reference step / step, where the reference is the
  one-device cell (parallelism none) of the same framework, network and batch_size: under strong scaling the same
  global batch (T1 / Tt), under weak scaling the batch of one device (the throughput ratio).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from convbench.analysis.formatting import setup_rank
from convbench.analysis.query import launch_medians
from convbench.analysis.stats import Kind, Outcome, decide_ratio, quartile_ratio, time_interval
from convbench.analysis.study import Run

TASK = "scaling"
PARALLEL = ("data", "tensor")
PARALLELISM_ORDER = ["none", "data", "tensor", "hybrid"]
PARALLELISM_NAMES = {"none": "one device", "data": "data parallel", "tensor": "tensor parallel", "hybrid": "hybrid"}
MODE_ORDER = ["strong", "weak"]
PHASES = ["forward", "backward", "optimizer"]
DESCRIPTORS = ["cell_id", "framework", "engine", "setup", "arch", "kernel", "arch_spec", "image_size", "device",
               "devices", "parallelism", "scaling_mode", "batch_size", "straggler_ms", "global_batch", "params",
               "threads_per_rank", "status", "error", "phase_method"]
# (metric, phase) of the tidy table -> column: median, and <column>_iqr where the metric has one
TIMES = {("time", p): p for p in [*PHASES, "total", "step"]} | {
    ("comm_time", "step"): "comm", ("baseline_time", "step"): "base_step",
    ("baseline_time", "backward"): "base_backward"}
VALUES = {("exposed_communication", "step"): "exposed", ("payload_bytes", "measured"): "payload",
          ("payload_bytes", "model"): "payload_model", ("wire_bytes", "measured"): "wire",
          ("wire_bytes", "model"): "wire_model", ("loopback_bytes", "measured"): "loopback",
          ("loopback_bytes", "model"): "loopback_model", ("payload_match", "step"): "match"}


def _sort(df: pd.DataFrame) -> pd.DataFrame:
    def position(order):
        return lambda s: s.map(lambda x: (order.index(x), "") if x in order else (len(order), str(x)))

    rank = {"setup": lambda s: s.map(setup_rank), "parallelism": position(PARALLELISM_ORDER),
            "mode": position(MODE_ORDER), "kernel": lambda s: s.map(str)}
    order = ["setup", "kernel", "arch", "batch_size", "mode", "parallelism", "devices", "straggler_ms"]
    return df.sort_values(order, key=lambda s: rank.get(s.name, lambda x: x)(s), kind="stable").reset_index(drop=True)


def cells(run: Run) -> pd.DataFrame:
    """One row per scaling cell: its descriptors, medians (seconds) and IQRs of the phases, the step, the
    communication alone and the baseline, the bytes, and efficiency and speed-up with their quartile ranges."""
    tidy = run.tidy
    rows = tidy[tidy["task"] == TASK] if len(tidy) and "scaling_mode" in tidy else tidy.iloc[0:0]
    if rows.empty:
        return pd.DataFrame(columns=[*DESCRIPTORS, "mode"])
    df = rows.drop_duplicates("cell_id")[DESCRIPTORS].rename(columns={"scaling_mode": "mode"}).set_index("cell_id")
    df["straggler_ms"] = df["straggler_ms"].fillna(0.0)
    for (metric, phase), column in {**TIMES, **VALUES}.items():
        hit = rows[(rows["metric"] == metric) & (rows["phase"] == phase)].set_index("cell_id")
        df[column] = hit["value"].reindex(df.index)
        if (metric, phase) in TIMES:
            df[f"{column}_iqr"] = hit["iqr"].reindex(df.index)
            resolved = hit["resolved"] if "resolved" in hit else pd.Series(True, index=hit.index)
            df[f"{column}_resolved"] = resolved.reindex(df.index).map(lambda r: r is not False and r != False)  # noqa: E712
    step_n = rows[(rows["metric"] == "time") & (rows["phase"] == "step")].set_index("cell_id")["n"]
    df["step_n"] = step_n.reindex(df.index)
    df = _sort(df.reset_index())
    ok = df["status"] == "ok"
    df["efficiency"] = np.where(ok, df["base_step"] / df["step"], np.nan)
    df["efficiency_lo"], df["efficiency_hi"] = quartile_ratio(df["base_step"], df["base_step_iqr"], df["step"],
                                                              df["step_iqr"])
    df["reference"] = None
    for column in ["ref_step", "ref_step_iqr", "speedup", "speedup_lo", "speedup_hi"]:
        df[column] = np.nan
    refs = df[ok & (df["devices"] == 1) & (df["parallelism"] == "none") & (df["straggler_ms"] == 0)]
    for i, row in df[ok].iterrows():
        ref = refs[(refs["setup"] == row["setup"]) & (refs["arch"] == row["arch"]) & (refs["device"] == row["device"])
                   & (refs["image_size"] == row["image_size"]) & (refs["global_batch"] == row["batch_size"])]
        if ref.empty:
            continue
        ref = ref.iloc[0]
        work = row["global_batch"] / ref["global_batch"]
        lo, hi = quartile_ratio(ref["step"], ref["step_iqr"], row["step"], row["step_iqr"])
        df.loc[i, ["reference", "ref_step", "ref_step_iqr", "speedup", "speedup_lo", "speedup_hi"]] = [
            ref["cell_id"], ref["step"], ref["step_iqr"], work * ref["step"] / row["step"], work * lo, work * hi]
    return df


def timed(df: pd.DataFrame) -> pd.DataFrame:
    """Cells that ran, without a straggler."""
    return df[(df["status"] == "ok") & (df["straggler_ms"] == 0)] if len(df) else df


def parallel(df: pd.DataFrame) -> pd.DataFrame:
    """Data- and tensor-parallel cells that ran, without a straggler."""
    rows = timed(df)
    return rows[rows["parallelism"].isin(PARALLEL)] if len(rows) else rows


def ratio_of(run: Run, a: pd.Series, b: pd.Series, phase: str) -> tuple[float, float, float, Kind]:
    """a's phase over b's and its interval's kind: from the launch medians, paired by launch, where both cells ran in
    several launches, else a bootstrap over the raw samples of their one launch (stats.time_interval), else the
    quartile range."""
    samples = run.samples

    def of(cell):
        return (launch_medians(run.tidy, phase, cell_id=cell["cell_id"]),
                samples.loc[(samples["cell_id"] == cell["cell_id"]) & (samples["phase"] == phase), "value"].to_numpy())
    (la, sa), (lb, sb) = of(a), of(b)
    found = time_interval(la, lb, sa, sb)
    if found is not None:
        return (*found[:3], found[4])
    lo, hi = quartile_ratio(a[phase], a[f"{phase}_iqr"], b[phase], b[f"{phase}_iqr"])
    return float(a[phase] / b[phase]), float(lo), float(hi), Kind.QUARTILES


def comparisons(df: pd.DataFrame, run: Run) -> pd.DataFrame:
    """Tensor parallel over data parallel, backward and step, for every configuration where both ran: ratio, interval,
    its kind and outcome against the time margin; shorter: the scheme whose time was shorter with the whole interval
    beyond the margin ('' where it is not)."""
    keys = ["setup", "arch", "mode", "devices", "batch_size", "image_size", "device"]
    rows = []
    for key, group in parallel(df).groupby(keys, sort=False):
        by = {p: group[group["parallelism"] == p] for p in PARALLEL}
        if any(g.empty for g in by.values()):
            continue
        tensor, data = by["tensor"].iloc[0], by["data"].iloc[0]
        row = dict(zip(keys, key)) | {"global_batch": data["global_batch"]}
        for phase in ["backward", "step"]:
            r, lo, hi, kind = ratio_of(run, tensor, data, phase)
            if not (tensor[f"{phase}_resolved"] and data[f"{phase}_resolved"]):
                r = lo = hi = float("nan")  # a derived phase the data cannot tell from zero: no ratio, undecided
            outcome = decide_ratio(lo, hi, run.margins.ratio)
            row |= {f"{phase}_ratio": r, f"{phase}_lo": lo, f"{phase}_hi": hi, f"{phase}_kind": kind,
                    f"{phase}_outcome": outcome,
                    f"{phase}_shorter": {Outcome.SLOWER: "data", Outcome.FASTER: "tensor"}.get(outcome, "")}
        rows.append(row)
    return pd.DataFrame(rows)


def straggler_pairs(df: pd.DataFrame, run: Run) -> pd.DataFrame:
    """Each cell with a delayed device against the same cell without: ratio of the steps with its interval
    (ratio_of), and the time added per step (status ok, failed or unmatched)."""
    if not len(df):
        return pd.DataFrame()
    keys = ["setup", "arch", "parallelism", "mode", "devices", "batch_size", "image_size", "device"]
    rows = []
    for _, row in df[df["straggler_ms"] > 0].iterrows():
        match = df[(df["straggler_ms"] == 0) & np.logical_and.reduce([df[k] == row[k] for k in keys])]
        out = {**{k: row[k] for k in keys}, "straggler_ms": row["straggler_ms"], "cell_id": row["cell_id"],
               "status": "failed", "ratio": np.nan, "lo": np.nan, "hi": np.nan, "kind": None, "added": np.nan,
               "step": row.get("step"), "plain_step": np.nan, "global_batch": row["global_batch"]}
        if not match.empty and row["status"] == "ok" and match.iloc[0]["status"] == "ok":
            base = match.iloc[0]
            r, lo, hi, kind = ratio_of(run, row, base, "step")
            out |= {"status": "ok", "ratio": r, "lo": lo, "hi": hi, "kind": kind, "added": row["step"] - base["step"],
                    "plain_step": base["step"]}
        elif match.empty:
            out["status"] = "unmatched"
        rows.append(out)
    return pd.DataFrame(rows)


def cell_key(row, batches: int) -> str:
    """The macro key of a cell: scaling/<setup>/<arch>/<parallelism>-<mode>[-lag<ms>ms]/t<devices>[/b<batch>]."""
    lag = f"-lag{row['straggler_ms']:g}ms" if row["straggler_ms"] else ""
    batch = f"/b{row['batch_size']}" if batches > 1 else ""
    return f"scaling/{row['setup']}/{row['arch']}/{row['parallelism']}-{row['mode']}{lag}/t{row['devices']}{batch}"

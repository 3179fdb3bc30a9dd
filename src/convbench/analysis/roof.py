"""Nothing above the roof: every timed point's useful FLOP/s against its device's one roof.

A device has one roof, whichever framework times on it: the best GEMM rate and copy bandwidth that any process of any
framework measured on it (a framework's GEMM library can be slow on a CPU: PyTorch's torch.mm reached 204 GFLOP/s on
a 2-core AMD EPYC where TensorFlow's reached 462, and a roof per framework put PyTorch's steps above theirs), and beside
it the theoretical peak of the hardware (convbench.peak; the highest any process recorded, its clock being measured
as a lower bound). A device is what tidy.hardware names: the CPU model and the threads a process used, or the GPU
model and its precision.

The tidy table holds, per timed cell and phase, achieved_flops (useful FLOPs, the taps inside the image, over the
median time), and per step arithmetic_intensity; roof_rows adds peak_fraction (over the device's peak),
attainable_flops (min of the device's GEMM and its bandwidth x intensity) and ceiling_fraction (over attainable). A
point above the peak cannot be measured: a FLOP count or a timer is wrong; one above the device's GEMM roof means
the roof was measured low. The analysis does not stop on either (a whole paper lost to one cell); it marks them
loudly: a warning on stderr while analysing, a red cross and the words "above peak" in the figures, and a sentence
in bold in the paper (flag <study>/roof/any-above-peak). Shared by the engines study (the roofline of every speed
cell), the layers study (every convolution timed alone) and the reference run; not a study.
"""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from convbench.analysis.formatting import (
    FRAMEWORK_ORDER,
    escape,
    flag,
    framework_name,
    percent,
    setup_label,
    setup_rank,
    sig3,
    tt,
    words,
)

ABOVE = "above peak"  # the words beside a point that passed its theoretical peak
CEILINGS = {"gemm_flops": "gemm", "memory_bandwidth": "bandwidth", "peak_flops": "peak"}  # metric -> roof column


def device_roofs(df: pd.DataFrame) -> pd.DataFrame:
    """Per device (tidy's hardware column): gemm, bandwidth and peak, the highest any ok process of any framework
    recorded on it (NaN where none did), and gemm_framework, the framework whose process reached that GEMM."""
    columns = ["gemm", "bandwidth", "peak", "gemm_framework"]
    none = pd.DataFrame(columns=columns, index=pd.Index([], dtype=object, name="hardware"))
    if df.empty or "metric" not in df or "hardware" not in df:
        return none
    rows = df[(df["status"] == "ok") & (df["phase"] == "ceiling") & df["metric"].isin(list(CEILINGS))]
    if rows.empty:
        return none
    best = rows.loc[rows.groupby(["hardware", "metric"])["value"].idxmax()]
    out = best.pivot(index="hardware", columns="metric", values="value").rename(columns=CEILINGS)
    gemm = best[best["metric"] == "gemm_flops"].set_index("hardware")["framework"]
    return out.reindex(columns=columns[:3]).assign(gemm_framework=gemm)


def roof_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows that set every point against its device's roof: peak_fraction (per phase with achieved_flops), and per
    step attainable_flops and ceiling_fraction; each a copy of its achieved_flops row with the metric and value
    replaced."""
    roofs = device_roofs(df)
    points = df[(df["status"] == "ok") & (df["metric"] == "achieved_flops")] if len(roofs) else df.iloc[:0]
    if points.empty:
        return df.iloc[:0]
    keys = ["cell_id", "phase"]
    intensity = (df[df["metric"] == "arithmetic_intensity"][keys + ["value"]].drop_duplicates(keys)
                 .rename(columns={"value": "intensity"}))
    intensity = points[keys].merge(intensity, on=keys, how="left")["intensity"].to_numpy()
    roof = roofs.reindex(points["hardware"])
    # NaN where a ceiling or the intensity is missing (a layer phase has none: only the peak to answer to)
    attainable = pd.Series(np.minimum(roof["gemm"].to_numpy(), roof["bandwidth"].to_numpy() * intensity),
                           index=points.index)
    achieved = points["value"]
    new = [points.assign(metric="peak_fraction", value=achieved / roof["peak"].to_numpy()),
           points.assign(metric="attainable_flops", value=attainable),
           points.assign(metric="ceiling_fraction", value=achieved / attainable)]
    return pd.concat([n.dropna(subset=["value"]) for n in new], ignore_index=True)


def peak_points(df: pd.DataFrame, task: str | None = None) -> pd.DataFrame:
    """One row per ok cell x phase that has a peak fraction: cell_id, framework, engine, arch, task, phase, device,
    hardware, fraction, achieved (useful FLOP/s), peak (its device's theoretical peak), gemm (its device's GEMM roof:
    the best any framework measured) and gemm_fraction (achieved over it)."""
    columns = ["cell_id", "study", "framework", "engine", "arch", "task", "phase", "device", "hardware", "fraction",
               "achieved", "peak", "gemm", "gemm_fraction"]
    if df.empty or "metric" not in df:
        return pd.DataFrame(columns=columns)
    ok = df[(df["status"] == "ok") & ((df["task"] == task) if task else True)]
    keys = ["cell_id", "phase"]
    fraction = ok[ok["metric"] == "peak_fraction"]
    achieved = ok[ok["metric"] == "achieved_flops"][keys + ["value"]].rename(columns={"value": "achieved"})
    out = (fraction.rename(columns={"value": "fraction"}).merge(achieved, on=keys, how="left")
           .merge(device_roofs(df)[["peak", "gemm"]], left_on="hardware", right_index=True, how="left"))
    return out.assign(gemm_fraction=out["achieved"] / out["gemm"])[columns].reset_index(drop=True)


def above_peak(df: pd.DataFrame, task: str | None = None) -> pd.DataFrame:
    """The points that passed their theoretical peak; each one also warned about on stderr."""
    points = peak_points(df, task)
    above = points[points["fraction"] > 1]
    for p in above.itertuples():
        print(f"convbench: warning: {p.cell_id} {p.phase}: {p.achieved / 1e9:.1f} GFLOP/s of useful work is above "
              f"the theoretical peak {p.peak / 1e9:.1f} GFLOP/s of its hardware ({p.fraction:.2f}x): a FLOP count or "
              "a timer is wrong", file=sys.stderr)
    return above.reset_index(drop=True)


def roof_values(df: pd.DataFrame, key: str, task: str | None = None) -> dict[str, str]:
    """Macro values under `key` (e.g. engines/roof): the device's roof (its theoretical peak and its GEMM roof in
    GFLOP/s, and the framework whose process measured that GEMM), per framework the largest share of each that any
    point reached, and the points above either (count, names, flag)."""
    points = peak_points(df, task)
    values = {f"{key}/ran": flag(len(points))}
    roofs = device_roofs(df).reindex(list(dict.fromkeys(points["hardware"])))
    gflops = lambda column: words(sig3(v / 1e9) for v in roofs[column].dropna()) or "--"  # noqa: E731
    values |= {f"{key}/peak-gflops": gflops("peak"), f"{key}/gemm-gflops": gflops("gemm"),
               f"{key}/gemm-framework": words(framework_name(f) for f in roofs["gemm_framework"].dropna()) or "--"}
    for framework in sorted(set(FRAMEWORK_ORDER) | set(points["framework"]), key=lambda f: setup_rank(f"{f}-")):
        rows = points[points["framework"] == framework]
        best = rows.loc[rows["fraction"].idxmax()] if len(rows) else None
        values[f"{key}/{framework}-peak-percent-max"] = percent(best["fraction"]) if best is not None else "--"
        values[f"{key}/{framework}-peak-max-cell"] = point_name(best) if best is not None else "--"
        gemm = rows["gemm_fraction"].max() if len(rows) else float("nan")
        values[f"{key}/{framework}-gemm-percent-max"] = percent(gemm) if pd.notna(gemm) else "--"
    for metric in ("measured_clock_hz", "reported_clock_hz"):  # CPU processes: the clock a core ran at, and the system's:
        hz = ceiling_max(df, metric, task)  # the highest, as the peak takes the highest any process recorded
        values[f"{key}/{metric.replace('_hz', '').replace('_', '-')}-ghz"] = f"{hz / 1e9:.2f}" if pd.notna(hz) else "--"
    values[f"{key}/clock-measured"] = flag(values[f"{key}/measured-clock-ghz"] != "--")
    above, over = above_peak(df, task), points[points["gemm_fraction"] > 1]
    return values | {f"{key}/above-peak": str(len(above)), f"{key}/any-above-peak": flag(len(above)),
                     f"{key}/above-peak-cells": words(point_name(p) for _, p in above.iterrows()) or "--",
                     f"{key}/above-gemm": str(len(over)), f"{key}/any-above-gemm": flag(len(over)),
                     f"{key}/above-gemm-cells": words(point_name(p) for _, p in over.iterrows()) or "--"}


def point_name(p) -> str:
    """'PyTorch eager on \\texttt{k3}, step' (LaTeX)."""
    return f"{escape(setup_label(p['framework'], p['engine']))} on {tt(p['arch'])}, {escape(p['phase'])}"


def ceiling_max(df: pd.DataFrame, metric: str, task: str | None = None) -> float:
    """The highest over processes of a per-process ceiling row (e.g. measured_clock_hz); NaN where none has it."""
    if not len(df) or "metric" not in df:
        return float("nan")
    rows = df[(df["metric"] == metric) & (df["status"] == "ok") & ((df["task"] == task) if task else True)]
    return float(rows["value"].max()) if len(rows) else float("nan")


def framework_roofs(df: pd.DataFrame) -> pd.DataFrame:
    """Per framework, the roof of the device its ok cells ran on (gemm, bandwidth, peak; FLOP/s and bytes/s): the same
    numbers for every framework on one device. A framework seen on several devices gets the first one's that has a
    roof (a cell whose hardware string names another thread count may have measured no ceiling)."""
    roofs = device_roofs(df)
    if roofs.empty:
        return roofs
    ok = df[df["status"] == "ok"]
    ok = ok.assign(roofed=ok["hardware"].isin(roofs.index)).sort_values("roofed", ascending=False, kind="stable")
    first = ok.drop_duplicates("framework").set_index("framework")["hardware"]
    return roofs.reindex(first.to_numpy()).set_index(first.index)


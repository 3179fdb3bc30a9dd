"""Nothing above the roof: every timed point's useful FLOP/s against the theoretical peak of its hardware.

The tidy table holds, per timed cell and phase, peak_fraction: useful FLOPs (taps inside the image) over the median
time, over the theoretical peak its process recorded (convbench.peak). A fraction above 1 cannot be measured: a FLOP
count or a timer is wrong. The analysis does not stop on one (a whole paper lost to one cell); it marks it loudly:
a warning on stderr while analysing, a red cross and the words "above peak" in the figures, and a sentence in bold in
the paper (flag <study>/roof/any-above-peak). Shared by the engines study (the roofline of every speed cell) and the
layers study (every convolution timed alone); not a study.
"""
from __future__ import annotations

import sys

import pandas as pd

from convbench.analysis.formatting import (FRAMEWORK_ORDER, escape, flag, percent, setup_label, setup_rank, sig3,
                                           tt, words)

ABOVE = "above peak"  # the words beside a point that passed its theoretical peak


def peak_points(df: pd.DataFrame, task: str | None = None) -> pd.DataFrame:
    """One row per ok cell x phase that has a peak fraction: cell_id, framework, engine, arch, task, phase, device,
    fraction, achieved (useful FLOP/s), peak (the process's theoretical peak), gemm (its measured GEMM ceiling) and
    gemm_fraction (achieved over it: above 1 is possible, the ceiling being one GEMM size on a shared machine)."""
    columns = ["cell_id", "study", "framework", "engine", "arch", "task", "phase", "device", "fraction", "achieved",
               "peak", "gemm", "gemm_fraction"]
    if df.empty or "metric" not in df:
        return pd.DataFrame(columns=columns)
    ok = df[(df["status"] == "ok") & ((df["task"] == task) if task else True)]
    keys = ["cell_id", "phase"]
    fraction = ok[ok["metric"] == "peak_fraction"]
    achieved = ok[ok["metric"] == "achieved_flops"][keys + ["value"]].rename(columns={"value": "achieved"})
    ceiling = {name: ok[ok["metric"] == metric][["cell_id", "value"]].drop_duplicates("cell_id")
               .rename(columns={"value": name}) for name, metric in (("peak", "peak_flops"), ("gemm", "gemm_flops"))}
    out = (fraction.rename(columns={"value": "fraction"}).merge(achieved, on=keys, how="left")
           .merge(ceiling["peak"], on="cell_id", how="left").merge(ceiling["gemm"], on="cell_id", how="left"))
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
    """Macro values under `key` (e.g. engines/roof): each framework's theoretical peak (GFLOP/s), the largest share of
    it any point reached (and of the measured GEMM ceiling), and the points above it (count, names, flag)."""
    points = peak_points(df, task)
    values = {f"{key}/ran": flag(len(points))}
    present = set(points["framework"])
    top = peaks(df[df["task"] == task] if task and len(df) else df)
    for framework in sorted(set(FRAMEWORK_ORDER) | present, key=lambda f: setup_rank(f"{f}-")):
        values[f"{key}/{framework}-peak-gflops"] = sig3(top[framework] / 1e9) if framework in top else "--"
        rows = points[points["framework"] == framework]
        best = rows.loc[rows["fraction"].idxmax()] if len(rows) else None
        values[f"{key}/{framework}-peak-percent-max"] = percent(best["fraction"]) if best is not None else "--"
        values[f"{key}/{framework}-peak-max-cell"] = point_name(best) if best is not None else "--"
        gemm = rows["gemm_fraction"].max() if len(rows) else float("nan")
        values[f"{key}/{framework}-gemm-percent-max"] = percent(gemm) if pd.notna(gemm) else "--"
    for metric in ("measured_clock_hz", "reported_clock_hz"):  # CPU processes: the clock a core ran at, and the system's
        hz = ceiling_median(df, metric, task)
        values[f"{key}/{metric.replace('_hz', '').replace('_', '-')}-ghz"] = f"{hz / 1e9:.2f}" if pd.notna(hz) else "--"
    values[f"{key}/clock-measured"] = flag(values[f"{key}/measured-clock-ghz"] != "--")
    above = above_peak(df, task)
    return values | {f"{key}/above-peak": str(len(above)), f"{key}/any-above-peak": flag(len(above)),
                     f"{key}/above-peak-cells": words(point_name(p) for _, p in above.iterrows()) or "--"}


def point_name(p) -> str:
    """'PyTorch eager on \\texttt{k3}, step' (LaTeX)."""
    return f"{escape(setup_label(p['framework'], p['engine']))} on {tt(p['arch'])}, {escape(p['phase'])}"


def ceiling_median(df: pd.DataFrame, metric: str, task: str | None = None) -> float:
    """The median over processes of a per-process ceiling row (e.g. measured_clock_hz); NaN where none has it."""
    if not len(df) or "metric" not in df:
        return float("nan")
    rows = df[(df["metric"] == metric) & (df["status"] == "ok") & ((df["task"] == task) if task else True)]
    return float(rows.drop_duplicates("cell_id")["value"].median()) if len(rows) else float("nan")


def peaks(df: pd.DataFrame) -> pd.Series:
    """The theoretical peak per framework (median over its processes' records), FLOP/s."""
    rows = df[(df["metric"] == "peak_flops") & (df["status"] == "ok")] if len(df) and "metric" in df else pd.DataFrame()
    if rows.empty:
        return pd.Series(dtype=float)
    return rows.drop_duplicates("cell_id").groupby("framework")["value"].median()

"""The backward pass on several devices (issue 6): data parallel against tensor parallel.

Records of task "scaling" (convbench.parallel.worker for PyTorch, convbench.parallel.tf_worker for TensorFlow)
-> figures/scaling_*.pdf, tables/scaling_*.tex and macros 'scaling/...'. Imports neither torch nor tensorflow:
the closed-form byte models come from convbench.parallel.bytes_model, which needs only the spec.

What is computed, per cell (one record):
- efficiency = the no-communication baseline's step median / the parallel step median (the baseline: every
  device alone on its share, the same shapes and FLOPs, no collectives), with a quartile-based range;
- speed-up = (global batch / reference's global batch) x reference step / step, where the reference is the
  one-device cell (parallelism none) of the same framework, network and batch_size: under strong scaling the
  same global batch (speed-up = T1 / Tt), under weak scaling the batch of one device (the throughput ratio);
- bytes: the payload counted during one step against the closed-form model, the ring model's wire bytes per
  rank, and on the CPU the host's loopback counter against the gloo model;
- the crossover: over kernel sizes and global batches, the batch below which tensor parallel moves fewer
  wire bytes per rank than data parallel, for the widths of the networks studied (ring model);
- the straggler: a cell with straggler_ms > 0 against the same cell without the delay;
- verdicts: tensor parallel's backward and step over data parallel's at each device count, with a percentile
  bootstrap interval over the raw samples (numpy only).

Macro keys (every key the paper quotes exists with zero records too; see ALWAYS):
  scaling/<sentence-name>                                    the generated sentences (ALWAYS)
  scaling/<setup>/<arch>/<parallelism>-<mode>[-lag<ms>ms]/t<devices>/{step-ms,backward-ms,comm-ms,speedup,efficiency}
  scaling/verdict/<setup>/<arch>/<mode>/t<devices>/{backward,step}-ratio[-lo|-hi]   tensor over data
  scaling/straggler/<setup>/<arch>/<parallelism>/t<devices>/{ratio,ratio-lo,ratio-hi,added-ms}
  scaling/bytes/<setup>/<arch>/<parallelism>-<mode>/t<devices>/{payload,payload-model}
  scaling/crossover/k<kernel>-batch                          (the first width configuration studied)
  /b<batch_size> is appended to a cell's part of the key where the study ran more than one batch_size.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from convbench.analysis.claim import LEVEL, RESAMPLES, SEED, bootstrap_ratio  # noqa: E402
from convbench.analysis.figures import placeholder as figure_placeholder  # noqa: E402
from convbench.analysis.tables import (blank_repeats, booktabs, escape, placeholder, ragged, ratio,  # noqa: E402
                                       sig3, thousands, tt, words)
from convbench.analysis.tidy import last_line, setup_label, setup_rank  # noqa: E402
from convbench.parallel import bytes_model  # noqa: E402
from convbench.spec import ArchSpec, param_count  # noqa: E402

TASK = "scaling"
PARALLEL = ("data", "tensor")
PARALLELISM_ORDER = ["none", "data", "tensor", "hybrid"]
PARALLELISM_NAMES = {"none": "one device", "data": "data parallel", "tensor": "tensor parallel", "hybrid": "hybrid"}
MODE_ORDER = ["strong", "weak"]
PHASES = ["forward", "backward", "optimizer"]
KERNELS = (1, 3, 5, 7, 9)  # odd: 'same' padding (convbench.spec)
BATCHES = (8, 16, 32, 64, 128, 256, 512)
STRAGGLER_WHOLE = 0.8  # a step that grew by this fraction of the delay or more "waited" for the late device
NONE = "No scaling cells ran in this run."
X = r"$\times$"  # for f-strings, whose expressions cannot hold a backslash (Python 3.11)
FIGURES = ("scaling_speedup", "scaling_phases", "scaling_bytes")
TABLES = ("scaling_times", "scaling_phases", "scaling_bytes", "scaling_crossover", "scaling_straggler",
          "scaling_verdicts", "scaling_failed")
# Keys that exist whatever the records hold (the paper's section quotes only these).
ALWAYS = ("cells", "cells-ok", "cells-failed", "scope-sentence", "hardware-sentence", "method-sentence",
          "speedup-sentence", "phases-sentence", "bytes-sentence", "crossover-sentence", "straggler-sentence",
          "verdict-sentence", "gloo-sentence", "tf-tensor-sentence", "hybrid-sentence", "failed-sentence",
          "device-counts", "kernels", "batches", "crossover-devices", "bootstrap-resamples", "bootstrap-seed",
          "bootstrap-level")


# --- records -> one row per cell -----------------------------------------------------------------

def _get(d, *path):
    for key in path:
        if not isinstance(d, dict) or d.get(key) is None:
            return None
        d = d[key]
    return d


def _summary_columns(prefix: str, summary) -> dict:
    if not isinstance(summary, dict):
        return {prefix: np.nan, f"{prefix}_iqr": np.nan, f"{prefix}_samples": None}
    samples = summary.get("samples")
    return {prefix: summary.get("median", np.nan), f"{prefix}_iqr": summary.get("iqr", np.nan),
            f"{prefix}_samples": [float(x) for x in samples] if samples else None}


def error_lines(text) -> tuple[str | None, str | None]:
    """(the final exception's header line, the last line) of a traceback; either may be None."""
    lines = [line.strip() for line in str(text or "").strip().splitlines() if line.strip()]
    heads = [line for line in lines if re.match(r"^(rank \d+: )?[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b:?", line)]
    return (heads[-1] if heads else None), last_line(text)


def kernel_of(blocks: list[dict]) -> int | str:
    kernels = sorted({int(b.get("kernel", 3)) for b in blocks})
    return kernels[0] if len(kernels) == 1 else "/".join(map(str, kernels))


def widths_of(arch: dict) -> tuple:
    """What the byte models need besides the kernel: (width, depth, activation, pieces, pool) per block."""
    return (tuple((b["width"], b.get("depth", 1), b.get("activation", "relu"), b.get("pieces", 1), b.get("pool", 2))
                  for b in arch["blocks"]), arch.get("in_channels", 3), arch.get("num_classes", 10))


def spec_of(widths: tuple, kernel: int, name: str = "grid") -> ArchSpec:
    blocks, in_channels, classes = widths
    return ArchSpec.from_dict(name, {"blocks": [
        {"width": w, "kernel": kernel, "depth": d, "activation": a, "pieces": p, "pool": pool}
        for w, d, a, p, pool in blocks]}, in_channels, classes)


def record_row(record: dict) -> dict:
    cell, timings = record["cell"], record.get("timings") or {}
    counts, comm, env = record.get("counts") or {}, record.get("communication") or {}, record.get("environment") or {}
    settings = cell.get("settings") or {}
    arch = cell["arch"]
    mode = settings.get("scaling", "strong")
    global_batch = counts.get("global_batch") or (cell["batch_size"] * (cell["devices"] if mode == "weak" else 1))
    head, last = error_lines(record.get("error")) if record["status"] != "ok" else (None, None)
    row = {
        "cell_id": record["cell_id"], "framework": cell["framework"], "engine": cell["engine"],
        "setup": f"{cell['framework']}-{cell['engine']}", "arch": arch["name"], "kernel": kernel_of(arch["blocks"]),
        "widths": widths_of(arch), "arch_dict": arch, "image_size": cell.get("image_size"),
        "device": cell.get("device", "cpu"), "devices": int(cell["devices"]),
        "parallelism": cell.get("parallelism", "none"), "mode": mode, "batch_size": int(cell["batch_size"]),
        "straggler_ms": float(settings.get("straggler_ms") or 0.0), "global_batch": int(global_batch),
        "params": counts.get("params"), "threads_per_rank": counts.get("threads_per_rank"),
        "threads": cell.get("threads"), "status": record["status"], "error": record.get("error"),
        "error_head": head, "error_line": last, "phase_method": timings.get("phase_method"),
        "cpu_count": env.get("cpu_count"), "cpu_model": env.get("cpu_model"), "device_model": env.get("device_model"),
        "versions": env.get("versions") or {}, "distributed": env.get("distributed") or {},
    }
    phases = timings.get("phases") or {}
    for phase in [*PHASES, "total"]:
        row |= _summary_columns(phase, phases.get(phase))
    row |= _summary_columns("step", timings.get("step"))
    row |= _summary_columns("comm", timings.get("communication"))
    baseline = timings.get("baseline") or {}
    row |= _summary_columns("base_step", baseline.get("step"))
    row |= _summary_columns("base_backward", (baseline.get("phases") or {}).get("backward"))
    row["exposed"] = timings.get("exposed_communication", np.nan)
    row["step_n"] = _get(timings, "step", "n")
    measured, model = comm.get("measured") or {}, comm.get("model") or {}
    row |= {"payload": measured.get("payload_bytes"), "payload_model": model.get("payload_bytes"),
            "wire": measured.get("wire_bytes_per_rank"), "wire_model": model.get("wire_bytes_per_rank"),
            "match": comm.get("payload_matches_model"), "loopback": comm.get("loopback_bytes_per_step"),
            "loopback_model": comm.get("loopback_model_bytes_per_step")}
    if row["params"] is None:
        row["params"] = param_count(spec_of(row["widths"], row["kernel"])) if isinstance(row["kernel"], int) else None
    return row


def _sort(cells: pd.DataFrame) -> pd.DataFrame:
    def position(order):
        return lambda s: s.map(lambda x: (order.index(x), "") if x in order else (len(order), str(x)))

    rank = {"setup": lambda s: s.map(setup_rank), "parallelism": position(PARALLELISM_ORDER),
            "mode": position(MODE_ORDER), "kernel": lambda s: s.map(str)}
    order = ["setup", "kernel", "arch", "batch_size", "mode", "parallelism", "devices", "straggler_ms"]
    return cells.sort_values(order,
                             key=lambda s: rank.get(s.name, lambda x: x)(s), kind="stable").reset_index(drop=True)


def cells(records: list[dict]) -> pd.DataFrame:
    """One row per scaling record, with efficiency and speed-up (and their quartile-based ranges) added."""
    rows = [record_row(r) for r in records if (r.get("cell") or {}).get("task") == TASK]
    if not rows:
        return pd.DataFrame(columns=["cell_id", "framework", "setup", "arch", "devices", "parallelism", "mode",
                                     "status", "straggler_ms"])
    df = _sort(pd.DataFrame(rows))
    ok = df["status"] == "ok"
    df["efficiency"] = np.where(ok, df["base_step"] / df["step"], np.nan)
    df["efficiency_lo"], df["efficiency_hi"] = quartile_ratio(df["base_step"], df["base_step_iqr"], df["step"],
                                                              df["step_iqr"])
    df["reference"] = None
    for column in ["ref_step", "speedup", "speedup_lo", "speedup_hi"]:
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
        df.loc[i, ["reference", "ref_step", "speedup", "speedup_lo", "speedup_hi"]] = [
            ref["cell_id"], ref["step"], work * ref["step"] / row["step"], work * lo, work * hi]
    return df


def quartile_ratio(a, ia, b, ib):
    """A range of a/b from the quartiles of both (median -/+ IQR/2), as macros.time_ratio; arrays or scalars."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    ia, ib = np.nan_to_num(np.asarray(ia, float)) / 2, np.nan_to_num(np.asarray(ib, float)) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = (a - ia) / (b + ib)
        hi = np.where(b > ib, (a + ia) / np.where(b > ib, b - ib, 1.0), np.inf)
    return lo, hi


def _ratio_of(a: pd.Series, b: pd.Series, column: str) -> tuple[float, float, float]:
    """Bootstrap over raw samples where both cells kept them, else the quartile-based range."""
    sa, sb = a.get(f"{column}_samples"), b.get(f"{column}_samples")
    if sa and sb:
        return bootstrap_ratio(sa, sb)
    lo, hi = quartile_ratio(a[column], a[f"{column}_iqr"], b[column], b[f"{column}_iqr"])
    return float(a[column] / b[column]), float(lo), float(hi)


# --- labels and keys ------------------------------------------------------------------------------

def setup_name(setup: str) -> str:
    framework, _, engine = setup.partition("-")
    return setup_label(framework, engine)


def ms_text(seconds: float) -> str:
    return sig3(seconds * 1e3) if pd.notna(seconds) else "--"


def ms_iqr(median: float, iqr: float) -> str:
    if pd.isna(median):
        return "--"
    value = median * 1e3
    digits = max(0, 2 - math.floor(math.log10(abs(value)))) if value else 0
    return f"{value:.{digits}f} ({iqr * 1e3:.{digits}f})" if pd.notna(iqr) else f"{value:.{digits}f}"


def times_x(x: float) -> str:
    return f"{ratio(x)}$\\times$"


def span(values, fmt=ratio, unit: str = "") -> str:
    """'1.20' or '1.20--1.80' (min--max), with a unit after; 'from $-$0.50 to 1.80' where a bound is negative."""
    values = [v for v in values if pd.notna(v) and np.isfinite(v)]
    if not values:
        return "--"
    lo, hi = fmt(min(values)), fmt(max(values))
    if lo == hi:
        return f"{signed(lo)}{unit}"
    return f"from {signed(lo)} to {signed(hi)}{unit}" if lo.startswith("-") else f"{lo}--{hi}{unit}"


def signed(text: str) -> str:
    return "$-$" + text[1:] if text.startswith("-") else text


def plain(text) -> str:
    """Quoted text (an error line) for running prose: LaTeX specials escaped, < and > as text symbols."""
    return escape(text).replace("<", r"\textless{}").replace(">", r"\textgreater{}")


def cell_key(row, batches: int) -> str:
    lag = f"-lag{row['straggler_ms']:g}ms" if row["straggler_ms"] else ""
    batch = f"/b{row['batch_size']}" if batches > 1 else ""
    return f"scaling/{row['setup']}/{row['arch']}/{row['parallelism']}-{row['mode']}{lag}/t{row['devices']}{batch}"


def devices_words(n: int) -> str:
    return f"{n} device{'s' if n != 1 else ''}"


def mode_words(mode: str) -> str:
    return f"{mode} scaling"


def config_label(row) -> str:
    return f"{setup_name(row['setup'])}, {row['arch']}, {mode_words(row['mode'])}"


# --- figures --------------------------------------------------------------------------------------

def _timed(df: pd.DataFrame) -> pd.DataFrame:
    """Cells that ran, without a straggler."""
    return df[(df["status"] == "ok") & (df["straggler_ms"] == 0)] if len(df) else df


def _panels(df: pd.DataFrame) -> list[tuple[str, str]]:
    """(setup, mode) panels: each framework's scaling modes of its parallel cells (strong where it has none)."""
    timed = _timed(df)
    panels = []
    for setup in sorted(timed["setup"].unique(), key=setup_rank):
        modes = [m for m in MODE_ORDER if ((timed["setup"] == setup) & (timed["mode"] == m)
                                           & (timed["devices"] > 1)).any()]
        panels += [(setup, m) for m in (modes or ["strong"])]
    return panels


def _lines(df: pd.DataFrame, setup: str, mode: str) -> dict:
    """(parallelism, arch) -> rows over device counts, the one-device reference first."""
    timed = _timed(df)
    rows = timed[(timed["setup"] == setup)]
    lines = {}
    for (parallelism, arch), group in rows[(rows["mode"] == mode) & rows["parallelism"].isin(PARALLEL)].groupby(
            ["parallelism", "arch"], sort=False):
        for batch, g in group.groupby("batch_size"):
            ref = rows[(rows["arch"] == arch) & (rows["devices"] == 1) & (rows["parallelism"] == "none")
                       & (rows["global_batch"] == batch)]
            lines[(parallelism, arch if rows["batch_size"].nunique() == 1 else f"{arch} b{batch}")] = pd.concat(
                [ref.head(1), g]).sort_values("devices")
    return lines


def speedup_figure(df: pd.DataFrame, path: Path) -> Path:
    """Rows: step time, speed-up, efficiency against the device count; a column per framework and scaling mode."""
    panels = _panels(df)
    if not panels or not (_timed(df)["devices"] > 1).any():
        return figure_placeholder(path, "No parallel scaling cell ran in this run." if len(df) else NONE)
    colors = dict(zip(PARALLEL, sns.color_palette()[:2]))
    archs = list(dict.fromkeys(_timed(df)["arch"]))
    markers = dict(zip(archs, ["o", "s", "^", "D", "v", "P", "X"] * 3))
    fig, axes = plt.subplots(3, len(panels), figsize=(2.3 * len(panels) + 1.0, 6.4), squeeze=False, sharex="col")
    counts = sorted(_timed(df)["devices"].unique())
    for j, (setup, mode) in enumerate(panels):
        for (parallelism, arch), rows in _lines(df, setup, mode).items():
            style = {"color": colors[parallelism], "marker": markers.get(arch.split()[0], "o"), "markersize": 4.5,
                     "linewidth": 1.2, "capsize": 2, "elinewidth": 0.8}
            t = rows["devices"].to_numpy()
            axes[0][j].errorbar(t, rows["step"] * 1e3, yerr=rows["step_iqr"].fillna(0) * 1e3 / 2, **style)
            speed = rows["speedup"].to_numpy(float)
            err = np.array([speed - rows["speedup_lo"].to_numpy(float), rows["speedup_hi"].to_numpy(float) - speed])
            axes[1][j].errorbar(t, speed, yerr=np.clip(np.nan_to_num(err, posinf=0), 0, None), **style)
            eff = rows["efficiency"].to_numpy(float)
            err = np.array([eff - rows["efficiency_lo"].to_numpy(float), rows["efficiency_hi"].to_numpy(float) - eff])
            axes[2][j].errorbar(t, eff, yerr=np.clip(np.nan_to_num(err, posinf=0), 0, None), **style)
        axes[1][j].plot(counts, counts, ls="--", color="0.5", lw=0.8, zorder=0)
        axes[2][j].axhline(1, ls="--", color="0.5", lw=0.8, zorder=0)
        axes[0][j].set_title(f"{setup_name(setup)}\n{mode_words(mode)}", fontsize="medium")
        axes[2][j].set_xlabel("devices")
        for ax in axes[:, j]:
            ax.set_xscale("log", base=2)
            ax.set_xticks(counts, [str(c) for c in counts])
            ax.minorticks_off()
    axes[0][0].set_ylabel("step, median (ms)")
    axes[1][0].set_ylabel("speed-up over one device")
    axes[2][0].set_ylabel("efficiency (baseline / step)")
    handles = [Line2D([], [], color=colors[p], lw=1.2, label=PARALLELISM_NAMES[p]) for p in PARALLEL]
    handles += [Line2D([], [], color="0.3", marker=markers[a], ls="none", label=a) for a in archs]
    handles += [Line2D([], [], color="0.5", ls="--", lw=0.8, label="ideal")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize="small")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path)
    plt.close(fig)
    return path


PHASE_COLORS = dict(zip([*PHASES, "communication"], [*sns.color_palette()[:3], "0.55"]))


def phases_figure(df: pd.DataFrame, path: Path) -> Path:
    """Per cell, stacked forward / backward / optimizer medians, and beside it the communication replayed alone."""
    panels = _panels(df)
    if not panels:
        return figure_placeholder(path, NONE if not len(df) else "No scaling cell ran successfully in this run.")
    plain_cells = df[df["straggler_ms"] == 0]
    groups = []
    for setup, mode in panels:
        here = (plain_cells["mode"] == mode) | (plain_cells["devices"] == 1)
        rows = plain_cells[(plain_cells["setup"] == setup) & here]
        groups.append((setup, mode, rows))
    most = max(len(g[2]) for g in groups)
    ncols = 1 if most > 8 else min(2, len(groups))  # many cells: one panel per row, wide enough to read
    nrows = math.ceil(len(groups) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(3.4, 0.42 * most + 1.2) * ncols,
                                                    (2.4 if ncols == 1 else 3.3) * nrows + 0.4), squeeze=False)
    for ax in axes.flat[len(groups):]:
        ax.axis("off")
    for ax, (setup, mode, rows) in zip(axes.flat, groups):
        x = np.arange(len(rows))
        bottom = np.zeros(len(rows))
        for phase in PHASES:
            height = rows[phase].clip(lower=0).fillna(0).to_numpy() * 1e3
            ax.bar(x - 0.17, height, width=0.34, bottom=bottom, color=PHASE_COLORS[phase], label=phase)
            bottom += height
        comm = rows["comm"].fillna(0).to_numpy() * 1e3
        ax.bar(x + 0.17, comm, width=0.34, color=PHASE_COLORS["communication"], hatch="///", edgecolor="white",
               label="communication alone")
        for i, failed in enumerate(rows["status"] != "ok"):
            if failed:
                ax.text(i, 0, " failed", rotation=90, ha="center", va="bottom", fontsize="small", color="0.3")
        labels = [f"{r.arch}, {'1 device' if r.devices == 1 else f'{r.parallelism} x{r.devices}'}"
                  for r in rows.itertuples()]
        ax.set_xticks(x, labels, rotation=45, ha="right", rotation_mode="anchor", fontsize="small")
        ax.set_title(f"{setup_name(setup)}, {mode_words(mode)}", fontsize="medium")
        ax.set_ylabel("median time per step (ms)")
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=len(names), frameon=False, fontsize="small")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path)
    plt.close(fig)
    return path


def bytes_figure(df: pd.DataFrame, grid: pd.DataFrame, path: Path) -> Path:
    """Modelled wire bytes per rank against the global batch, a panel per device count: data parallel one line
    per kernel size (flat), tensor parallel one line (activations do not depend on the kernel); crossovers
    marked; the bytes counted in the cells (counted payload x ring factors) and the loopback counter / t overlaid."""
    if grid.empty:
        return figure_placeholder(path, NONE if not len(df) else "No network to model the bytes of in this run.")
    grid = grid[grid["config"] == grid["config"].iloc[0]]
    counts = sorted(grid["devices"].unique())
    kernels = sorted(grid["kernel"].unique())
    palette = dict(zip(kernels, sns.color_palette("viridis", len(kernels))))
    width = max(5.5, min(3.6 * len(counts), 10.5))
    fig, axes = plt.subplots(1, len(counts), figsize=(width, 3.4), squeeze=False, sharey=True)
    ran = df[(df["status"] == "ok") & df["parallelism"].isin(PARALLEL)] if len(df) else df
    for ax, t in zip(axes[0], counts):
        rows = grid[grid["devices"] == t]
        for k in kernels:
            line = rows[rows["kernel"] == k].sort_values("batch")
            ax.plot(line["batch"], line["data"], color=palette[k], lw=1.2)
            cross = line["crossover"].iloc[0]
            if line["batch"].min() <= cross <= line["batch"].max():
                ax.plot([cross], [line["data"].iloc[0]], marker="|", ms=9, mew=1.5, color=palette[k])
        line = rows[rows["kernel"] == kernels[0]].sort_values("batch")
        ax.plot(line["batch"], line["tensor"], color="black", lw=1.4, ls="--")
        here = ran[ran["devices"] == t] if len(ran) else ran
        for row in here.itertuples():
            wire = row.wire if pd.notna(row.wire) else (
                bytes_model.RING_FACTOR["all_reduce"](t) * row.payload if row.parallelism == "data" and pd.notna(
                    row.payload) else np.nan)
            color = palette.get(row.kernel, "0.3") if row.parallelism == "data" else "black"
            marker = "o" if row.parallelism == "data" else "s"
            if pd.notna(wire):
                ax.plot([row.global_batch], [wire], marker=marker, ls="none", ms=6, color=color, mec="white", mew=0.6)
            if pd.notna(row.loopback):
                ax.plot([row.global_batch], [row.loopback / t], marker=marker, ls="none", ms=8, mfc="none", mec=color,
                        mew=1.0)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        batches = sorted(rows["batch"].unique())
        ax.set_xticks(batches, [str(b) for b in batches], fontsize="small")
        ax.minorticks_off()
        ax.set_title(f"{t} devices", fontsize="medium")
        ax.set_xlabel("global batch")
    axes[0][0].set_ylabel("bytes per step and rank on the wire")
    handles = [Line2D([], [], color=palette[k], lw=1.2, label=f"data parallel, {k}x{k}") for k in kernels]
    handles += [Line2D([], [], color="black", lw=1.4, ls="--", label="tensor parallel (any kernel)"),
                Line2D([], [], color="0.3", marker="|", ls="none", ms=9, mew=1.5, label="crossover"),
                Line2D([], [], color="0.3", marker="o", ls="none", label="counted, data"),
                Line2D([], [], color="black", marker="s", ls="none", label="counted, tensor"),
                Line2D([], [], color="0.3", marker="o", mfc="none", ls="none", label="loopback / t")]
    fig.tight_layout()
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize="small")
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


# --- the crossover --------------------------------------------------------------------------------

def model_configs(df: pd.DataFrame) -> list[tuple]:
    """(widths, image_size) of the networks studied, the most frequent first."""
    if not len(df):
        return []
    counts = df.groupby(["widths", "image_size"], sort=False).size().sort_values(ascending=False, kind="stable")
    return list(counts.index)


def crossover_grid(df: pd.DataFrame, kernels=KERNELS, batches=BATCHES) -> pd.DataFrame:
    """Ring-model wire bytes per rank of both schemes over kernel sizes x global batches x device counts, for
    every width configuration studied; crossover: the batch where tensor parallel's bytes equal data parallel's
    (tensor parallel's grow in proportion to the batch, data parallel's do not depend on it)."""
    configs = model_configs(df)
    counts = sorted({int(t) for t in df["devices"] if t > 1}) if len(df) else []
    counts = counts or [2]
    batches = sorted({*batches, *(int(b) for b in df.loc[df["parallelism"].isin(PARALLEL), "global_batch"])}) \
        if len(df) else list(batches)
    rows = []
    for c, (widths, image_size) in enumerate(configs):
        for k in kernels:
            spec = spec_of(widths, k, f"k{k}")
            for t in counts:
                data = bytes_model.data_parallel_bytes(spec, t)["wire_bytes_per_rank"]
                per_example = bytes_model.tensor_parallel_bytes(spec, int(image_size), 1, t)["wire_bytes_per_rank"]
                for b in batches:
                    tensor = bytes_model.tensor_parallel_bytes(spec, int(image_size), b, t)["wire_bytes_per_rank"]
                    rows.append({"config": c, "widths": widths, "image_size": int(image_size), "kernel": k,
                                 "devices": t, "batch": b, "params": param_count(spec), "data": data,
                                 "tensor": tensor, "crossover": data / per_example})
    return pd.DataFrame(rows)


def crossover_at(spec: ArchSpec, image_size: int, t: int) -> float:
    """The global batch at which both schemes move as many wire bytes per rank (ring model)."""
    data = bytes_model.data_parallel_bytes(spec, t)["wire_bytes_per_rank"]
    return data / bytes_model.tensor_parallel_bytes(spec, int(image_size), 1, t)["wire_bytes_per_rank"]


def crossover_batch(crossover: float) -> int:
    """The largest whole global batch at which tensor parallel moves fewer bytes than data parallel."""
    return max(0, math.ceil(crossover) - 1)


def widths_words(widths: tuple, image_size: int) -> str:
    blocks, in_channels, _ = widths
    filters = words(str(w) for w, *_ in blocks)
    return f"{filters} filters per block on {image_size}$\\times${image_size} inputs with {in_channels} channels"


def crossover_values(df: pd.DataFrame, grid: pd.DataFrame) -> dict[str, str]:
    values = {"scaling/kernels": words(f"{k}$\\times${k}" for k in KERNELS),
              "scaling/batches": words(str(b) for b in sorted(grid["batch"].unique())) if len(grid) else
              words(str(b) for b in BATCHES),
              "scaling/crossover-devices": (words(str(t) for t in sorted(grid["devices"].unique())) if len(grid)
                                            else "--")}
    if grid.empty:
        values["scaling/crossover-sentence"] = NONE + " There is no network whose bytes to model."
        return values
    sentences = []
    for c, rows in grid.groupby("config", sort=True):
        widths, image_size = rows["widths"].iloc[0], rows["image_size"].iloc[0]
        per_kernel = rows.drop_duplicates(["kernel", "devices"])
        same = all(len({round(crossover_at(spec_of(widths, k), image_size, t), 9) for t in (2, 3, 4, 8, 16)}) == 1
                   for k in KERNELS)
        first = per_kernel[per_kernel["devices"] == per_kernel["devices"].max()]
        batches = {int(k): crossover_batch(x) for k, x in zip(first["kernel"], first["crossover"])}
        if c == 0:
            values |= {f"scaling/crossover/k{k}-batch": str(b) for k, b in batches.items()}
        listed = words(f"{b} for {k}$\\times${k}" if b else f"no batch for {k}$\\times${k}" for k, b in batches.items())
        t_words = (" at any device count t, since both schemes' wire bytes per rank carry the same ring factor "
                   "2(t$-$1)/t" if same else f" on {int(first['devices'].iloc[0])} devices")
        sentence = (f"For the networks studied ({widths_words(widths, image_size)}), the ring model has tensor "
                    f"parallel "
                    f"move fewer bytes per rank than data parallel only up to a global batch of {listed} kernels"
                    f"{t_words}.")
        ordered = [batches[k] for k in sorted(batches)]
        if len(ordered) > 1 and all(a < b for a, b in zip(ordered, ordered[1:])):
            sentence += (" The crossover grows with the kernel: data parallel moves the gradients, which grow with the "
                         "kernel's area; tensor parallel moves the activations, which do not.")
        studied = df[df["parallelism"].isin(PARALLEL) & (df["widths"] == widths) & (df["image_size"] == image_size)]
        pairs = studied.drop_duplicates(["kernel", "global_batch"])
        if len(pairs):
            fewer = {p: {} for p in PARALLEL}  # parallelism -> kernel -> global batches
            for row in pairs.sort_values("global_batch").itertuples():
                if isinstance(row.kernel, int):
                    winner = "tensor" if row.global_batch <= batches.get(row.kernel, 0) else "data"
                    fewer[winner].setdefault(row.kernel, []).append(str(row.global_batch))
            clauses = [f"{PARALLELISM_NAMES[p]} moves fewer bytes with " + words(
                f"{k}$\\times${k} kernels at {'global batches' if len(b) > 1 else 'a global batch'} of {words(b)}"
                for k, b in sorted(fewer[p].items())) for p in PARALLEL if fewer[p]]
            if clauses:
                sentence += f" At the kernels and global batches measured here, {'; '.join(clauses)}."
        sentences.append(sentence)
    values["scaling/crossover-sentence"] = " ".join(sentences)
    return values


# --- tables ---------------------------------------------------------------------------------------

def _cell_columns(rows: pd.DataFrame, lag: bool = False) -> pd.DataFrame:
    out = pd.DataFrame({
        "Network": rows["arch"].to_numpy(),
        "Scaling": rows["mode"].to_numpy(),
        "Parallelism": [("none" if p == "none" else p) + (f", +{s:g} ms" if lag and s else "")
                        for p, s in zip(rows["parallelism"], rows["straggler_ms"])],
        "t": rows["devices"].astype(int).astype(str).to_numpy(),
        "Batch": rows["global_batch"].astype(int).astype(str).to_numpy(),
    })
    return out


def times_table(df: pd.DataFrame) -> str:
    caption = ("Strong and weak scaling: step time in ms, median (interquartile range), of the parallel step and of "
               "the no-communication baseline (each device alone on its share, the same shapes, no collectives); "
               "efficiency = baseline / step; speed-up = the one-device cell's step over this step, times the "
               "ratio of global batches (weak scaling: the throughput over one device's). t: devices; batch: the "
               "global batch. A cell that failed shows \\emph{failed} (Table~\\ref{tab:scaling-failed}).")
    rows = df[df["straggler_ms"] == 0] if len(df) else df
    if rows.empty:
        return placeholder(caption, "tab:scaling-times", NONE)
    table = _cell_columns(rows)
    ok = (rows["status"] == "ok").to_numpy()
    table["Step"] = [ms_iqr(m, i) if good else r"\emph{failed}"
                     for m, i, good in zip(rows["step"], rows["step_iqr"], ok)]
    table["Baseline"] = [ms_iqr(m, i) if good else "--"
                         for m, i, good in zip(rows["base_step"], rows["base_step_iqr"], ok)]
    table["Efficiency"] = [ratio(e) if good and pd.notna(e) else "--" for e, good in zip(rows["efficiency"], ok)]
    table["Speed-up"] = [ratio(s) if good and pd.notna(s) else "--" for s, good in zip(rows["speedup"], ok)]
    groups = pd.Series([setup_name(s) for s in rows["setup"]])
    table = blank_repeats(table.assign(_g=groups.to_numpy()), ["_g", "Network", "Scaling"]).drop(columns="_g")
    return booktabs(table, caption, "tab:scaling-times", "lllrr" + "r" * 4, raw=("Step",), size=r"\scriptsize",
                    groups=groups, colsep="3pt")


def phases_table(df: pd.DataFrame) -> str:
    caption = ("The phases of a parallel step, in ms, median (interquartile range): forward, backward (PyTorch: "
               "holds DDP's overlapped all-reduce or the tensor-parallel reduce-scatters) and optimizer (TensorFlow: "
               "derived from cumulative programs; holds Keras's all-reduce), the collectives of one step replayed "
               "alone, and the exposed communication: forward plus backward above the baseline's (PyTorch).")
    rows = df[(df["straggler_ms"] == 0) & (df["status"] == "ok")] if len(df) else df
    if rows.empty:
        return placeholder(caption, "tab:scaling-phases", NONE if not len(df) else "No scaling cell ran successfully.")
    table = _cell_columns(rows)
    for phase, name in [("forward", "Forward"), ("backward", "Backward"), ("comm", "Comm. alone"),
                        ("optimizer", "Optimizer")]:
        table[name] = [ms_iqr(m, i) for m, i in zip(rows[phase], rows[f"{phase}_iqr"])]
    table["Exposed"] = [signed(ms_text(x)) for x in rows["exposed"]]
    groups = pd.Series([setup_name(s) for s in rows["setup"]])
    table = blank_repeats(table.assign(_g=groups.to_numpy()), ["_g", "Network", "Scaling"]).drop(columns="_g")
    return booktabs(table, caption, "tab:scaling-phases", "lllrr" + "r" * 5, raw=("Exposed",), size=r"\scriptsize",
                    groups=groups, colsep="3pt")


def bytes_table(df: pd.DataFrame) -> str:
    caption = ("Bytes of one step's collectives: the payload (the full tensors reduced or gathered) counted during a "
               "step against the closed-form model (data parallel: every gradient, 4 bytes per parameter; tensor "
               "parallel: the activations of every layer but the last, gathered in the forward and reduce-scattered "
               "in the backward, and the logits all-reduced both ways); the ring model's wire bytes per rank; and on "
               "the CPU the host's loopback counter per step (all ranks, TCP/IP headers included) against the gloo "
               "model, which counts gloo's reduce-scatter as the all-reduce it runs.")
    rows = df[df["parallelism"].isin(PARALLEL) & (df["straggler_ms"] == 0)] if len(df) else df
    if rows.empty:
        return placeholder(caption, "tab:scaling-bytes",
                           NONE if not len(df) else "No parallel scaling cell in this run.")
    table = _cell_columns(rows)
    ok = (rows["status"] == "ok").to_numpy()
    table["Payload"] = [thousands(p) if good else r"\emph{failed}" for p, good in zip(rows["payload"], ok)]
    table["Model"] = [thousands(p) if good else "--" for p, good in zip(rows["payload_model"], ok)]
    table["Equal"] = [("yes" if m else "no") if good and m is not None else "--" for m, good in zip(rows["match"], ok)]
    table["Wire/rank"] = [thousands(w) if good and pd.notna(w) else "--" for w, good in zip(rows["wire_model"], ok)]
    table["Loopback"] = [thousands(x) if pd.notna(x) else "--" for x in rows["loopback"]]
    table["Gloo model"] = [thousands(x) if pd.notna(x) else "--" for x in rows["loopback_model"]]
    table["Ratio"] = [ratio(a / b) if pd.notna(a) and pd.notna(b) and b else "--"
                      for a, b in zip(rows["loopback"], rows["loopback_model"])]
    groups = pd.Series([setup_name(s) for s in rows["setup"]])
    table = blank_repeats(table.assign(_g=groups.to_numpy()), ["_g", "Network", "Scaling"]).drop(columns="_g")
    return booktabs(table, caption, "tab:scaling-bytes", "lllrr" + "r" * 7, raw=("Payload",), size=r"\scriptsize",
                    groups=groups, colsep="2.5pt")


def crossover_table(grid: pd.DataFrame) -> str:
    caption = ("The crossover of the ring model: per kernel size, the parameters, data parallel's wire bytes per "
               "rank and step (independent of the batch), tensor parallel's per example of the global batch, and "
               "the largest global batch at which tensor parallel moves fewer bytes, for the widths studied.")
    if grid.empty:
        return placeholder(caption, "tab:scaling-crossover", NONE)
    t = grid["devices"].max()
    rows = grid[grid["devices"] == t].drop_duplicates(["config", "kernel"])
    table = pd.DataFrame({
        "Kernel": [f"{k}x{k}" for k in rows["kernel"]],
        "Parameters": [thousands(p) for p in rows["params"]],
        f"Data parallel (t = {t})": [thousands(d) for d in rows["data"]],
        "Tensor parallel per example": [thousands(d / c) for d, c in zip(rows["data"], rows["crossover"])],
        "Crossover batch": [str(crossover_batch(c)) for c in rows["crossover"]],
    })
    groups = pd.Series([widths_plain(w, s) for w, s in zip(rows["widths"], rows["image_size"])])
    return booktabs(table, caption, "tab:scaling-crossover", "lrrrr", size=r"\small",
                    groups=groups if groups.nunique() > 1 else None)


def widths_plain(widths: tuple, image_size: int) -> str:
    return f"{'/'.join(str(w) for w, *_ in widths[0])} filters, {image_size}x{image_size} inputs"


def straggler_pairs(df: pd.DataFrame) -> pd.DataFrame:
    """Each cell with a delayed device against the same cell without: ratio of the steps with its bootstrap
    interval, and the time added per step."""
    if not len(df):
        return pd.DataFrame()
    lagged = df[df["straggler_ms"] > 0]
    rows = []
    keys = ["setup", "arch", "parallelism", "mode", "devices", "batch_size", "image_size", "device"]
    for _, row in lagged.iterrows():
        match = df[(df["straggler_ms"] == 0) & np.logical_and.reduce([df[k] == row[k] for k in keys])]
        out = {**{k: row[k] for k in keys}, "straggler_ms": row["straggler_ms"], "cell_id": row["cell_id"],
               "status": "failed", "ratio": np.nan, "lo": np.nan, "hi": np.nan, "added": np.nan,
               "step": row.get("step"),
               "plain_step": np.nan, "global_batch": row["global_batch"], "error_line": row["error_line"]}
        if not match.empty and row["status"] == "ok" and match.iloc[0]["status"] == "ok":
            base = match.iloc[0]
            r, lo, hi = _ratio_of(row, base, "step")
            out |= {"status": "ok", "ratio": r, "lo": lo, "hi": hi, "added": row["step"] - base["step"],
                    "plain_step": base["step"]}
        elif match.empty:
            out["status"] = "unmatched"
        rows.append(out)
    return pd.DataFrame(rows)


def straggler_table(pairs: pd.DataFrame) -> str:
    caption = (f"A straggler: the last device sleeps the given delay at the start of every step. Step medians in ms "
               f"without and with the delay, their ratio [{LEVEL * 100:.0f}\\,\\% percentile bootstrap interval, "
               f"{RESAMPLES} resamples of each cell's raw step samples, seed {SEED}] and the time added per step.")
    if pairs.empty:
        return placeholder(caption, "tab:scaling-straggler", "No cell of this run delayed a device.")
    table = pd.DataFrame({
        "Network": pairs["arch"].to_numpy(), "Parallelism": pairs["parallelism"].to_numpy(),
        "t": pairs["devices"].astype(int).astype(str).to_numpy(),
        "Delay (ms)": [f"{s:g}" for s in pairs["straggler_ms"]],
        "Without": [ms_text(x) for x in pairs["plain_step"]],
        "With": [ms_text(x) if s == "ok" else r"\emph{failed}" for x, s in zip(pairs["step"], pairs["status"])],
        "Ratio": [f"{ratio(r)} [{ratio(lo)}, {ratio(hi)}]" if s == "ok" else "--"
                  for r, lo, hi, s in zip(pairs["ratio"], pairs["lo"], pairs["hi"], pairs["status"])],
        "Added (ms)": [ms_text(a) for a in pairs["added"]],
    })
    groups = pd.Series([setup_name(s) for s in pairs["setup"]])
    table = blank_repeats(table.assign(_g=groups.to_numpy()), ["_g", "Network"]).drop(columns="_g")
    return booktabs(table, caption, "tab:scaling-straggler", "llrrrrrr", raw=("With",), size=r"\small", groups=groups)


def verdicts(df: pd.DataFrame) -> pd.DataFrame:
    """Tensor parallel over data parallel, backward and step, for every configuration where both ran."""
    if not len(df):
        return pd.DataFrame()
    timed = _timed(df)
    keys = ["setup", "arch", "mode", "devices", "batch_size", "image_size", "device"]
    rows = []
    for key, group in timed[timed["parallelism"].isin(PARALLEL)].groupby(keys, sort=False):
        by = {p: group[group["parallelism"] == p] for p in PARALLEL}
        if any(g.empty for g in by.values()):
            continue
        tensor, data = by["tensor"].iloc[0], by["data"].iloc[0]
        row = dict(zip(keys, key)) | {"global_batch": data["global_batch"]}
        for phase in ["backward", "step"]:
            r, lo, hi = _ratio_of(tensor, data, phase)
            row |= {f"{phase}_ratio": r, f"{phase}_lo": lo, f"{phase}_hi": hi,
                    f"{phase}_shorter": "data" if lo > 1 else ("tensor" if hi < 1 else "")}
        rows.append(row)
    return pd.DataFrame(rows)


def verdicts_table(v: pd.DataFrame) -> str:
    caption = (f"Tensor parallel's time over data parallel's at the same device count and global batch: ratio of the "
               f"medians [{LEVEL * 100:.0f}\\,\\% percentile bootstrap interval, {RESAMPLES} resamples of each cell's "
               f"raw samples, seed {SEED}], for the backward pass and the whole step; shorter: the scheme whose "
               f"time was shorter with the whole interval on one side of 1.")
    if v.empty:
        return placeholder(caption, "tab:scaling-verdicts", "No configuration of this run ran both data and tensor "
                                                            "parallel.")
    table = pd.DataFrame({
        "Network": v["arch"].to_numpy(), "Scaling": v["mode"].to_numpy(),
        "t": v["devices"].astype(int).astype(str).to_numpy(),
        "Batch": v["global_batch"].astype(int).astype(str).to_numpy()})
    for phase, name in [("backward", "Backward"), ("step", "Step")]:
        table[name] = [f"{ratio(r)} [{ratio(lo)}, {ratio(hi)}]" for r, lo, hi in
                       zip(v[f"{phase}_ratio"], v[f"{phase}_lo"], v[f"{phase}_hi"])]
        table[f"{name}: shorter"] = [PARALLELISM_NAMES[s].split()[0] if s else "--" for s in v[f"{phase}_shorter"]]
    groups = pd.Series([setup_name(s) for s in v["setup"]])
    table = blank_repeats(table.assign(_g=groups.to_numpy()), ["_g", "Network", "Scaling"]).drop(columns="_g")
    return booktabs(table, caption, "tab:scaling-verdicts", "llrrrlrl", size=r"\small", groups=groups)


def failed_table(df: pd.DataFrame) -> str:
    caption = "Scaling cells that failed, grouped by the last line of their error."
    if not len(df):
        return NONE + "\n"
    bad = df[df["status"] != "ok"]
    if bad.empty:
        return f"All {len(df)} scaling cells ran.\n"
    groups = bad.groupby(bad["error_line"].fillna("(no error text)"), sort=False)
    table = pd.DataFrame({
        "Cells": [r" \newline ".join(tt(c) for c in g["cell_id"]) for _, g in groups],
        "Error (last line)": [plain(line) for line, _ in groups]})
    return booktabs(table, caption, "tab:scaling-failed", ragged(0.5) + ragged(0.42),
                    raw=("Cells", "Error (last line)"),
                    size=r"\scriptsize")


# --- sentences ------------------------------------------------------------------------------------

def scope_values(df: pd.DataFrame) -> dict[str, str]:
    if not len(df):
        return {"scaling/cells": "0", "scaling/cells-ok": "0", "scaling/cells-failed": "0",
                "scaling/scope-sentence": NONE, "scaling/device-counts": "--"}
    failed = int((df["status"] != "ok").sum())
    counts = sorted(df["devices"].unique())
    lags = sorted(s for s in df["straggler_ms"].unique() if s)
    parallel = [PARALLELISM_NAMES[p] for p in PARALLELISM_ORDER[1:] if p in set(df["parallelism"])]
    setups = words(escape(setup_name(s)) for s in sorted(df["setup"].unique(), key=setup_rank))
    sizes = words(f"{s:.0f}{X}{s:.0f}" for s in sorted(df["image_size"].dropna().unique()))
    delays = words(f"{s:g}" for s in lags)
    sentence = (f"The study ran {len(df)} cells ({failed} failed): {setups}, "
                f"the networks {words(tt(a) for a in dict.fromkeys(df['arch']))}, on "
                f"{words(str(c) for c in counts)} device{'s' if counts != [1] else ''}, "
                f"{words(parallel) if parallel else 'no parallelism'}, "
                f"{words(m for m in MODE_ORDER if m in set(df['mode']))} scaling from a batch size of "
                f"{words(str(b) for b in sorted(df['batch_size'].unique()))} on {sizes} synthetic images"
                + (f", and a straggler of {delays}" + r"\,ms" if lags else "") + ".")
    return {"scaling/cells": str(len(df)), "scaling/cells-ok": str(len(df) - failed),
            "scaling/cells-failed": str(failed), "scaling/scope-sentence": sentence,
            "scaling/device-counts": words(str(c) for c in counts)}


def hardware_sentence(df: pd.DataFrame) -> str:
    if not len(df):
        return NONE
    parts = []
    cpu = df[df["device"] == "cpu"]
    if len(cpu):
        cores = sorted({int(c) for c in cpu["cpu_count"].dropna()})
        model = words(escape(m) for m in sorted(cpu["cpu_model"].dropna().unique())) or "(not recorded)"
        many = cpu[cpu["devices"] > 1]
        kinds = []
        if (many["framework"] == "torch").any():
            backends = sorted({str(d.get("backend")) for d in many.loc[many["framework"] == "torch", "distributed"]
                               if d.get("backend")}) or ["gloo"]
            threads = sorted({int(x) for x in many.loc[many["framework"] == "torch", "threads_per_rank"].dropna()})
            kinds.append("PyTorch's are processes on one machine that exchange over "
                         f"{words(escape(b) for b in backends)}"
                         + (f", each with {words(str(x) for x in threads)} thread{'s' if threads != [1] else ''}"
                            if threads else ""))
        if (many["framework"] == "tensorflow").any():
            kinds.append("TensorFlow's are logical CPU devices of one process that share its thread pool")
        core_words = f"{words(str(c) for c in cores)}-core" if cores else "one"
        parts.append(
            f"These devices are simulated: {'; '.join(kinds) if kinds else 'every cell ran on one device'}, all on the "
            f"same {core_words} CPU ({model}). More of them add no compute: the cores they share are the cores one "
            f"device had, so on this machine the times measure what splitting the work and communicating cost, "
            f"not what more hardware would gain.")
    gpu = df[df["device"] != "cpu"]
    if len(gpu):
        models = words(escape(m) for m in sorted(gpu["device_model"].dropna().unique())) or "(not recorded)"
        parts.append(f"The GPU cells ran on up to {int(gpu['devices'].max())} GPUs ({models}), one device each.")
    return " ".join(parts)


def method_sentence(df: pd.DataFrame) -> str:
    ok = df[df["status"] == "ok"] if len(df) else df
    if not len(ok):
        return NONE
    parts = []
    for setup, rows in ok.groupby("setup", sort=False):
        n = rows["step_n"].dropna().astype(int)
        repeats = f"{n.min()}" if n.min() == n.max() else f"{n.min()} to {n.max()}"
        how = ("timed each phase directly, every clock read after a barrier of all ranks"
               if set(rows["phase_method"]) == {"direct"} else
               "derived the phases from cumulative programs timed in the same repeats (forward; forward and "
               "backward; the whole step)")
        parts.append(f"{escape(setup_name(setup))} {how}, and timed the whole step {repeats} times per cell")
    return "; ".join(parts) + "."


def speedup_sentence(df: pd.DataFrame) -> str:
    timed = _timed(df)
    parallel = timed[timed["parallelism"].isin(PARALLEL) & timed["speedup"].notna()] if len(timed) else timed
    if not len(parallel):
        return (NONE if not len(df) else "No parallel cell of this run has a one-device reference to compare with.")
    clauses = []
    for (setup, mode), rows in parallel.groupby(["setup", "mode"], sort=False):
        per = []
        for parallelism, prow in rows.groupby("parallelism", sort=False):
            at = [f"{span(g['speedup'], unit=X)} on {devices_words(t)} (efficiency {span(g['efficiency'])})"
                  for t, g in prow.groupby("devices")]
            per.append(f"{PARALLELISM_NAMES[parallelism]} {words(at)}")
        clauses.append(f"{escape(setup_name(setup))} under {mode_words(mode)}: {', '.join(per)}")
    archs = parallel["arch"].nunique()
    spread = f" (lowest--highest over the {archs} networks)" if archs > 1 else ""
    text = f"The speed-ups over one device were{spread}: {'; '.join(clauses)}."
    above = parallel[parallel["speedup"] > parallel["devices"] * 1.05]
    if len(above):
        spread = span(above["ref_step_iqr_rel"], fmt=lambda x: f"{100 * x:.0f}")
        text += (f" {len(above)} of these {len(parallel)} speed-ups exceed the number of devices, which the devices "
                 f"cannot explain: the one-device reference ran in a job of its own, with all its threads in one "
                 f"process, and the interquartile range of its steps was {spread}" + r"\,\%" + " of their median.")
    low = parallel["efficiency"].min()
    if pd.notna(low):
        worst = parallel.loc[parallel["efficiency"].idxmin()]
        text += (f" The lowest efficiency against the no-communication baseline was {ratio(low)} "
                 f"({escape(config_label(worst))}, {PARALLELISM_NAMES[worst['parallelism']]} on "
                 f"{devices_words(worst['devices'])}): its step took {times_x(1 / low)} as long as each device alone "
                 f"on its share.")
    return text


def phases_sentence(df: pd.DataFrame) -> str:
    timed = _timed(df)
    rows = timed[timed["parallelism"].isin(PARALLEL) & timed["comm"].notna()] if len(timed) else timed
    if not len(rows):
        return NONE if not len(df) else "No parallel cell of this run timed its communication."
    clauses = []
    for parallelism, g in rows.groupby("parallelism", sort=False):
        share = g["comm"] / g["step"]
        clause = (f"{PARALLELISM_NAMES[parallelism]}'s collectives, replayed alone, took "
                  f"{span(g['comm'] * 1e3, sig3)}\\,ms "
                  f"per step ({span(share, lambda x: f'{100 * x:.0f}')}\\,\\% of the parallel step)")
        exposed = g["exposed"].dropna()
        if len(exposed):
            clause += (f", and the forward and backward passes of its PyTorch cells took "
                       f"{span(exposed * 1e3, sig3)}\\,ms "
                       f"longer than the baseline's")
        clauses.append(clause)
    return "Over the cells that ran, " + "; ".join(clauses) + "."


def bytes_sentence(df: pd.DataFrame) -> str:
    rows = df[df["parallelism"].isin(PARALLEL) & (df["status"] == "ok") & (df["straggler_ms"] == 0)] if len(df) else df
    if not len(rows):
        return NONE if not len(df) else "No parallel cell of this run counted its bytes."
    known = rows[rows["match"].notna()]
    equal = known[known["match"].astype(bool)]
    parts = []
    if len(equal) == len(known):
        parts.append(f"In every one of the {len(known)} parallel cells that ran, the payload counted during a step "
                     f"equalled the closed-form model to the byte")
    else:
        other = known[~known["match"].astype(bool)]
        parts.append(f"The payload counted during a step equalled the closed-form model in {len(equal)} of "
                     f"{len(known)} "
                     f"parallel cells; it differed in {words(tt(c) for c in other['cell_id'])}")
    loop = rows[rows["loopback"].notna() & rows["loopback_model"].notna() & (rows["loopback_model"] > 0)]
    if len(loop):
        parts.append(f"the host's loopback counter, all ranks' bytes on the wire, read "
                     f"{span(loop['loopback'] / loop['loopback_model'])} "
                     f"times the gloo model's bytes (the excess: TCP/IP headers and gloo's own messages)")
    pairs = verdict_bytes(rows)
    if len(pairs):
        parts.append(f"at the batches measured, tensor parallel moved {span(pairs, unit=X)} the bytes per rank "
                     f"of data parallel (ring model over the counted payloads)")
    if ((rows["framework"] == "tensorflow") & (rows["device"] == "cpu")).any():
        parts.append("TensorFlow's logical CPU devices reduce the gradients by copies inside one process, so only "
                     "their payload is counted")
    return "; ".join(parts) + "."


def gloo_sentence(df: pd.DataFrame) -> str:
    """The loopback counter against the ring and the gloo models, per parallelism (PyTorch on the CPU)."""
    rows = df[df["loopback"].notna() & (df["status"] == "ok") & (df["straggler_ms"] == 0)] if len(df) else df
    if len(rows):
        rows = rows[rows["wire_model"].notna() & (rows["wire_model"] > 0) & rows["loopback_model"].notna()]
    if not len(rows):
        return ("No cell of this run read the host's loopback counter (it is read for PyTorch processes on the CPU "
                "only), so the backend's algorithm is not checked against the bytes on the wire here.")
    clauses = []
    for parallelism, g in rows.groupby("parallelism", sort=False):
        ring = g["loopback"] / (g["devices"] * g["wire_model"])
        gloo = span(g["loopback"] / g["loopback_model"], unit=X)
        clauses.append(f"{span(ring, unit=X)} the ring model's bytes and {gloo} "
                       f"the gloo model's under {PARALLELISM_NAMES[parallelism]}")
    return f"The loopback counter read {words(clauses)}."


def verdict_bytes(rows: pd.DataFrame) -> pd.Series:
    """Tensor parallel's counted wire bytes per rank over data parallel's, per configuration with both."""
    keys = ["setup", "arch", "mode", "devices", "batch_size"]
    wide = rows[rows["wire"].notna()].pivot_table(index=keys, columns="parallelism", values="wire", aggfunc="first")
    if not set(PARALLEL) <= set(wide.columns):
        return pd.Series(dtype=float)
    return (wide["tensor"] / wide["data"]).dropna()


def straggler_sentence(pairs: pd.DataFrame) -> str:
    ok = pairs[pairs["status"] == "ok"] if len(pairs) else pairs
    if not len(ok):
        return ("No cell of this run delayed a device." if pairs.empty else
                "No cell that delayed a device ran together with the same cell without the delay.")
    clauses = []
    for parallelism, g in ok.groupby("parallelism", sort=False):
        delays = words(f"{s:g}" for s in sorted(g["straggler_ms"].unique()))
        clauses.append(
            f"the step under {PARALLELISM_NAMES[parallelism]} by {span(g['ratio'], unit=X)} "
            f"({LEVEL * 100:.0f}\\,\\% intervals within {ratio(g['lo'].min())}--{ratio(g['hi'].max())}), "
            f"{span(g['added'] * 1e3, sig3)}\\,ms more per step for a delay of {delays}\\,ms "
            f"({span(g['added'] * 1e3 / g['straggler_ms'])} times the delay)")
    n = len(ok)
    text = (f"One device sleeping at the start of every step slowed {'; and '.join(clauses)}, over {n} cell"
            f"{'s' if n > 1 else ''} (lowest--highest over networks and frameworks).")
    share = ok["added"] * 1e3 / ok["straggler_ms"]
    if (share >= STRAGGLER_WHOLE).all():
        schemes = "either scheme" if ok["parallelism"].nunique() > 1 else PARALLELISM_NAMES[ok["parallelism"].iloc[0]]
        text += (f" Every step grew by at least {STRAGGLER_WHOLE * 100:.0f}" + r"\,\%"
                 + f" of the delay: under {schemes} the other devices waited for the late one at a collective "
                 "rather than hiding the delay behind their own work.")
    elif (share < STRAGGLER_WHOLE).all():
        text += (f" Every step grew by less than {STRAGGLER_WHOLE * 100:.0f}" + r"\,\%" + " of the delay: part of it "
                 "was hidden behind the other devices' work.")
    return text


def verdict_sentence(v: pd.DataFrame, df: pd.DataFrame) -> str:
    if v.empty:
        return (NONE if not len(df) else "No configuration of this run ran both data and tensor parallel, so there "
                                         "is no comparison of the two here.")
    where = " (simulated)" if (df["device"] == "cpu").all() else ""
    sentences = []
    for t, g in v.groupby("devices", sort=True):
        clauses = []
        for phase, name in [("backward", "backward pass"), ("step", "whole step")]:
            counts = {p: int((g[f"{phase}_shorter"] == p).sum()) for p in PARALLEL}
            tie = len(g) - sum(counts.values())
            tally = [f"{PARALLELISM_NAMES[p]} in {counts[p]}" for p in PARALLEL if counts[p]]
            tally += [f"neither in {tie} (the interval holds 1)"] if tie else []
            clauses.append(
                f"the {name} was shorter with {words(tally)} of {len(g)} comparison{'s' if len(g) > 1 else ''}, "
                f"tensor parallel's time over data parallel's {span(g[f'{phase}_ratio'], unit=X)} "
                f"({LEVEL * 100:.0f}\\,\\% intervals within {ratio(g[f'{phase}_lo'].min())}--"
                f"{ratio(g[f'{phase}_hi'].max())})")
        sentences.append(f"With {devices_words(t)}{where}, {'; '.join(clauses)}.")
    return " ".join(sentences)


def tf_tensor_sentence(df: pd.DataFrame) -> str:
    rows = df[(df["framework"] == "tensorflow") & (df["parallelism"] == "tensor")] if len(df) else df
    if not len(rows):
        return "This run had no TensorFlow tensor-parallel cell."
    bad = rows[rows["status"] != "ok"]
    if bad.empty:
        return f"All {len(rows)} TensorFlow tensor-parallel cells ran."
    versions = sorted({str(v.get("tensorflow")) for v in bad["versions"] if v.get("tensorflow")})
    first = bad.iloc[0]
    quote = f"``{plain(first['error_head'])}''" if first["error_head"] else ""
    if first["error_line"] and first["error_line"] != first["error_head"]:
        quote += (" and ends: " if quote else "") + f"``{plain(first['error_line'])}''"
    lines = bad["error_line"].fillna("").unique()
    same = "with the same error" if len(lines) == 1 else f"with {len(lines)} different errors; the first"
    where = f" in TensorFlow {words(escape(v) for v in versions)}" if versions else ""
    return (f"{len(bad)} of {len(rows)} TensorFlow tensor-parallel cells failed{where}, "
            f"{same}: {quote}." if quote else f"{len(bad)} of {len(rows)} TensorFlow tensor-parallel cells failed.")


def hybrid_sentence(df: pd.DataFrame) -> str:
    rows = df[df["parallelism"] == "hybrid"] if len(df) else df
    if len(rows):
        bad = rows[rows["status"] != "ok"]
        if bad.empty:
            return f"All {len(rows)} hybrid cells ran."
        head = bad.iloc[0]["error_head"] or bad.iloc[0]["error_line"] or "(no error text)"
        head = re.sub(r"^rank \d+: ", "", head)
        return (f"The {len(bad)} hybrid cell{'s' if len(bad) > 1 else ''} of this run failed, as the workers refuse "
                f"it: ``{plain(head)}''.")
    from convbench.parallel.cells import hybrid_error  # framework-free
    error = hybrid_error()
    return (f"This run asked for no hybrid cell; the workers refuse one with "
            f"``{plain(f'{type(error).__name__}: {error}')}''.")


def failed_sentence(df: pd.DataFrame) -> str:
    if not len(df):
        return NONE
    bad = df[df["status"] != "ok"]
    if bad.empty:
        return f"All {len(df)} scaling cells ran."
    kinds = bad.groupby(["setup", "parallelism"], sort=False).size()
    return (f"{len(bad)} of {len(df)} scaling cells failed ("
            + words(f"{n} {escape(setup_name(s))} {PARALLELISM_NAMES.get(p, p)}" for (s, p), n in kinds.items())
            + "); Table~\\ref{tab:scaling-failed} gives the last line of each error.")


def cell_values(df: pd.DataFrame, v: pd.DataFrame, pairs: pd.DataFrame) -> dict[str, str]:
    values = {}
    if not len(df):
        return values
    batches = df["batch_size"].nunique()
    for _, row in df[df["status"] == "ok"].iterrows():
        key = cell_key(row, batches)
        values[f"{key}/step-ms"] = ms_text(row["step"])
        values[f"{key}/backward-ms"] = ms_text(row["backward"])
        if pd.notna(row["comm"]):
            values[f"{key}/comm-ms"] = ms_text(row["comm"])
        if pd.notna(row["efficiency"]):
            values[f"{key}/efficiency"] = ratio(row["efficiency"])
        if pd.notna(row["speedup"]):
            values[f"{key}/speedup"] = ratio(row["speedup"])
        if row["parallelism"] in PARALLEL and pd.notna(row["payload"]) and not row["straggler_ms"]:
            bkey = key.replace("scaling/", "scaling/bytes/", 1)
            values[f"{bkey}/payload"] = thousands(row["payload"])
            values[f"{bkey}/payload-model"] = thousands(row["payload_model"])
    for row in v.itertuples() if len(v) else []:
        batch = f"/b{row.batch_size}" if batches > 1 else ""
        key = f"scaling/verdict/{row.setup}/{row.arch}/{row.mode}/t{row.devices}{batch}"
        for phase in ["backward", "step"]:
            for suffix, column in [("", "ratio"), ("-lo", "lo"), ("-hi", "hi")]:
                values[f"{key}/{phase}-ratio{suffix}"] = ratio(getattr(row, f"{phase}_{column}"))
    for row in pairs[pairs["status"] == "ok"].itertuples() if len(pairs) else []:
        batch = f"/b{row.batch_size}" if batches > 1 else ""
        key = f"scaling/straggler/{row.setup}/{row.arch}/{row.parallelism}/t{row.devices}{batch}"
        values |= {f"{key}/ratio": ratio(row.ratio), f"{key}/ratio-lo": ratio(row.lo), f"{key}/ratio-hi": ratio(row.hi),
                   f"{key}/added-ms": ms_text(row.added)}
    return values


# --- the entry point ------------------------------------------------------------------------------

def analyse_scaling(records: list[dict], out_dir: Path) -> dict[str, str]:
    """Figures into out_dir/figures/, tables into out_dir/tables/; returns macro key -> LaTeX value (keys
    'scaling/...')."""
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    df = cells(records)
    if len(df):
        rel = df["ref_step"].notna()
        refs = df.set_index("cell_id")
        df["ref_step_iqr_rel"] = [refs.loc[r, "step_iqr"] / refs.loc[r, "step"] if has else np.nan
                                  for r, has in zip(df["reference"], rel)]
    grid = crossover_grid(df)
    v, pairs = verdicts(df), straggler_pairs(df)

    speedup_figure(df, out / "figures" / "scaling_speedup.pdf")
    phases_figure(df, out / "figures" / "scaling_phases.pdf")
    bytes_figure(df, grid, out / "figures" / "scaling_bytes.pdf")
    tables = {"scaling_times": times_table(df), "scaling_phases": phases_table(df), "scaling_bytes": bytes_table(df),
              "scaling_crossover": crossover_table(grid), "scaling_straggler": straggler_table(pairs),
              "scaling_verdicts": verdicts_table(v), "scaling_failed": failed_table(df)}
    for name, tex in tables.items():
        (out / "tables" / f"{name}.tex").write_text(tex)

    values = {**scope_values(df),
              "scaling/hardware-sentence": hardware_sentence(df),
              "scaling/method-sentence": method_sentence(df),
              "scaling/speedup-sentence": speedup_sentence(df),
              "scaling/phases-sentence": phases_sentence(df),
              "scaling/bytes-sentence": bytes_sentence(df),
              **crossover_values(df, grid),
              "scaling/straggler-sentence": straggler_sentence(pairs),
              "scaling/verdict-sentence": verdict_sentence(v, df),
              "scaling/gloo-sentence": gloo_sentence(df),
              "scaling/tf-tensor-sentence": tf_tensor_sentence(df),
              "scaling/hybrid-sentence": hybrid_sentence(df),
              "scaling/failed-sentence": failed_sentence(df),
              "scaling/bootstrap-resamples": str(RESAMPLES), "scaling/bootstrap-seed": str(SEED),
              "scaling/bootstrap-level": f"{LEVEL * 100:.0f}",
              **cell_values(df, v, pairs)}
    missing = [k for k in ALWAYS if f"scaling/{k}" not in values]
    assert not missing, missing
    return values

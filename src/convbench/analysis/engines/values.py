"""The engines study's numbers for the text: scope, how phases were timed, derived-phase noise, consistency of phases
and step, compile time, failures, the estimated backward split and the roofline. Numbers, names and flags only; the
sentences are in paper/sections/engines.tex."""
from __future__ import annotations

import numpy as np
import pandas as pd

from convbench.analysis.engines.cells import NAME, NOT_RESOLVED, engine_phases, setup_order, study_cells
from convbench.analysis.engines.claim import claim_values
from convbench.analysis.formatting import (
    FRAMEWORK_ORDER,
    escape,
    flag,
    framework_name,
    kind_phrase,
    percent,
    ratio,
    seconds,
    setup_label,
    setup_rank,
    share_words,
    sig3,
    signed,
    span,
    tt,
    words,
)
from convbench.analysis.layerwise import layer_cells
from convbench.analysis.query import is_resolved, launch_medians, summarise, time_values
from convbench.analysis.roof import roof_values
from convbench.analysis.stats import time_interval
from convbench.analysis.study import Run
from convbench.analysis.tidy import DERIVED

MISMATCH = 1.5  # phases whose sum is further than this factor from the whole step do not describe that step



def setup_words(rows: pd.DataFrame) -> str:
    return words(escape(setup_label(*s.split("-", 1))) for s in setup_order(rows))


def cell_name(framework: str, engine: str, arch: str) -> str:
    return f"{escape(setup_label(framework, engine))} on {tt(arch)}"


def scope_values(run: Run) -> dict[str, str]:
    """What the study ran: setups, networks, cells, failures, layer-wise cells, and how each setup timed its phases."""
    df = run.tidy
    cells = study_cells(df)
    ok, failed = cells[cells["status"] == "ok"], cells[cells["status"] == "failed"]
    direct, derived = (ok[ok["phase_method"] == m] for m in ("direct", "derived"))
    return {f"{NAME}/setups": setup_words(cells) or "--", f"{NAME}/setups-count": str(len(setup_order(cells))),
            f"{NAME}/archs": words(tt(a) for a in dict.fromkeys(cells["arch"])) or "--",
            f"{NAME}/several-archs": flag(cells["arch"].nunique() > 1),  # a panel per network, or one panel
            f"{NAME}/cells": str(len(cells)), f"{NAME}/cells-failed": str(len(failed)),
            f"{NAME}/any-failed": flag(len(failed)),
            f"{NAME}/failed-cells": words(f"{cell_name(r.framework, r.engine, r.arch)} ({escape(r.error or '?')})"
                                          for r in failed.itertuples()) or "--",
            f"{NAME}/layer-cells": str(layer_cells(df)["cell_id"].nunique() if len(df) else 0),
            f"{NAME}/direct-setups": setup_words(direct) or "--", f"{NAME}/any-direct": flag(len(direct)),
            f"{NAME}/derived-setups": setup_words(derived) or "--", f"{NAME}/any-derived": flag(len(derived))}


def unresolved(run: Run) -> pd.DataFrame:
    """The derived phases the data cannot resolve, as the tidy table decided for every study (tidy.resolve: a sample
    at or below zero, or an interval over the launches that reaches zero, in any cell of the same configuration), one
    row per cell and phase: cell_id, setup, arch, phase."""
    cells = study_cells(run.tidy)
    derived = cells[(cells["status"] == "ok") & (cells["phase_method"] == "derived")]
    rows = [(c.cell_id, c.setup, c.arch, phase) for c in derived.itertuples() for phase in DERIVED
            if not is_resolved(run.tidy, c.cell_id, phase)]
    return pd.DataFrame(rows, columns=["cell_id", "setup", "arch", "phase"])




def unresolved_times(run: Run, values: dict[str, str]) -> dict[str, str]:
    """time_values' macros with each unresolved derived phase's median (and IQR) replaced by NOT_RESOLVED."""
    out = dict(values)
    for row in unresolved(run).itertuples():
        for key in values:
            if key.startswith(f"{NAME}/{row.setup}") and key.endswith((f"/{row.arch}/{row.phase}-ms",
                                                                      f"/{row.arch}/{row.phase}-iqr-ms")):
                out[key] = NOT_RESOLVED
    return out


def derived_values(run: Run) -> dict[str, str]:
    """How many of the derived cells' backward and optimizer samples came out negative, and the smallest of them; how
    many derived phases the data cannot resolve (unresolved), and which."""
    cells = study_cells(run.tidy)
    derived = cells[(cells["status"] == "ok") & (cells["phase_method"] == "derived")]
    samples = run.samples[run.samples["cell_id"].isin(derived["cell_id"])] if len(run.samples) else run.samples
    values, negative, counts = {}, [], []
    for phase in DERIVED:
        x = samples[samples["phase"] == phase]["value"] if len(samples) else pd.Series(dtype=float)
        values |= {f"{NAME}/derived/{phase}-samples": str(len(x)),
                   f"{NAME}/derived/{phase}-negative": str((x < 0).sum())}
        negative += list(x[x < 0])
        counts.append(share_words(int((x < 0).sum()), len(x), f"{phase} sample"))
    # 'none of the 36 backward samples and 9 of the 36 optimizer samples': no zero count
    values[f"{NAME}/derived/negative-counts"] = words(counts)
    values[f"{NAME}/derived/any-negative"] = flag(negative)
    values[f"{NAME}/derived/negative-min-ms"] = signed(sig3(min(negative) * 1e3)) if negative else "--"
    found = unresolved(run)
    values |= {f"{NAME}/derived/phases": str(len(derived) * len(DERIVED)),
               f"{NAME}/derived/unresolved": str(len(found)), f"{NAME}/derived/any-unresolved": flag(len(found)),
               f"{NAME}/derived/unresolved-cells": words(f"{cell_name(*r.setup.split('-', 1), r.arch)} ({r.phase})"
                                                         for r in found.itertuples()) or "--"}
    return values


SHARED_PHASES = ("forward", "backward", "step")  # compared where a cell is timed in this study and in another


def shared_cells(run: Run) -> pd.DataFrame:
    """The speed cells of this study timed again by another study (same framework, engine, network, batch, images and
    device): per pair and phase, the ratio of this study's time over the other's with its interval
    (stats.time_interval: launch-level medians paired by launch, both ran in the same launches; else a bootstrap of
    the samples) and whether they agree (the interval holds 1)."""
    df = run.tidy
    speed = df[(df["task"] == "speed") & (df["status"] == "ok")].drop_duplicates("cell_id") if len(df) else df
    keys = ["framework", "engine", "arch", "convs", "batch_size", "image_size", "device", "devices", "parallelism"]
    columns = ["cell_id", "other_id", "setup", "arch", "phase", "ratio", "lo", "hi", "kind", "agree"]
    if speed.empty:
        return pd.DataFrame(columns=columns)
    mine, others = speed[speed["study"] == NAME], speed[speed["study"] != NAME]
    pairs = mine.merge(others, on=keys, suffixes=("", "_other"))
    rows, samples = [], run.samples
    times = df[df["metric"] == "time"]
    unresolved = times[~times["resolved"].astype("boolean").fillna(True)] if "resolved" in times else times.iloc[:0]
    lost = set(zip(unresolved["cell_id"], unresolved["phase"]))
    for p in pairs.itertuples():
        for phase in SHARED_PHASES:
            if {(p.cell_id, phase), (p.cell_id_other, phase)} & lost:
                continue  # a derived phase the data cannot tell from zero is not compared
            x = [samples[(samples["cell_id"] == c) & (samples["phase"] == phase)]["value"] for c in (p.cell_id, p.cell_id_other)]
            found = time_interval(*(launch_medians(df, phase, cell_id=c) for c in (p.cell_id, p.cell_id_other)), *x)
            if found:
                r, lo, hi, _, kind = found
                rows.append([p.cell_id, p.cell_id_other, p.setup, p.arch, phase, r, lo, hi, kind, lo <= 1 <= hi])
    return pd.DataFrame(rows, columns=columns)


def shared_values(run: Run) -> dict[str, str]:
    """How many cells this study shares with another, how many of their phases agree within the interval, and the
    pair that disagrees most (ratio and interval)."""
    found = shared_cells(run)
    values = {f"{NAME}/shared/ran": flag(len(found)), f"{NAME}/shared/cells": str(found["cell_id"].nunique()),
              f"{NAME}/shared/phases": str(len(found)), f"{NAME}/shared/agree": str(int(found["agree"].sum())),
              f"{NAME}/shared/all-agree": flag(len(found) and found["agree"].all())}
    if len(found):
        worst = found.loc[(np.log(found["ratio"].astype(float))).abs().idxmax()]
        values |= {f"{NAME}/shared/worst": ratio(worst["ratio"]), f"{NAME}/shared/worst-lo": ratio(worst["lo"]),
                   f"{NAME}/shared/worst-hi": ratio(worst["hi"]), f"{NAME}/shared/worst-kind": kind_phrase([worst["kind"]]),
                   f"{NAME}/shared/worst-cell": f"{cell_name(*worst['setup'].split('-', 1), worst['arch'])} "
                                                f"({escape(worst['phase'])})"}
    return values


def compile_values(run: Run) -> dict[str, str]:
    """First step minus a median step (tracing and compiling), median over the networks per setup: least and most."""
    df = run.tidy
    cells = study_cells(df)
    timed = df[df["cell_id"].isin(cells[cells["status"] == "ok"]["cell_id"])]
    compile_s = timed[timed["metric"] == "compile_time"].groupby("setup")["value"].median()
    if compile_s.empty:
        return {f"{NAME}/compile/ran": "0"}
    values = {f"{NAME}/compile/ran": "1"}
    for end, setup in (("min", compile_s.idxmin()), ("max", compile_s.idxmax())):
        values |= {f"{NAME}/compile/{end}": seconds(compile_s[setup]),
                   f"{NAME}/compile/{end}-setup": escape(setup_label(*setup.split("-", 1)))}
    return values


def inductor_values(run: Run) -> dict[str, str]:
    """torch.compile (Inductor) against PyTorch eager on the same network and device: the ratio of their median times
    per phase (forward, backward, whole step), median over the networks with the least and the most, and whether
    every cell ran on the CPU (where Inductor keeps eager's oneDNN convolutions: benchmarks/compile_profile.py)."""
    df = run.tidy
    rows = df[(df["study"] == NAME) & (df["framework"] == "torch") & (df["status"] == "ok")] if len(df) else df
    times = summarise(rows, "time") if len(rows) else pd.DataFrame()
    key = f"{NAME}/inductor"
    if times.empty or not {"eager", "compile"} <= set(times["engine"]):
        return {f"{key}/ran": "0", f"{key}/cpu": "0"}
    wide = times.pivot_table(index=["arch", "config"], columns=["engine", "phase"], values="value")
    values = {f"{key}/ran": "1", f"{key}/cpu": flag((rows["device"] == "cpu").all()),
              f"{key}/networks": str(len(wide[("compile", "step")].dropna()))}
    for phase in ("forward", "backward", "step"):
        r = (wide[("compile", phase)] / wide[("eager", phase)]).dropna()
        values |= {f"{key}/{phase}-over-eager": ratio(r.median()) if len(r) else "--",
                   f"{key}/{phase}-over-eager-min": ratio(r.min()) if len(r) else "--",
                   f"{key}/{phase}-over-eager-max": ratio(r.max()) if len(r) else "--"}
    step = (wide[("compile", "step")] / wide[("eager", "step")]).dropna()
    values[f"{key}/step-scope"] = (f"median over the {len(step)} networks, {span(step)}" if len(step) > 1 else
                                   f"on {tt(step.index[0][0])}" if len(step) else "--")
    return values


def consistency_values(run: Run) -> dict[str, str]:
    """How the sum of a cell's phases (timed one by one) compares with its whole step (timed on its own): within
    each launch (the record's phase_overhead, the median over its launches), as the method section states it for
    every speed cell; medians over launches taken phase by phase can drift further apart, where launches differ."""
    df = run.tidy
    cells = study_cells(df)
    timed = df[df["cell_id"].isin(cells[cells["status"] == "ok"]["cell_id"])]
    r = (timed[timed["metric"] == "phase_overhead"].drop_duplicates("cell_id")
         .set_index(["cell_id", "framework", "engine", "arch"])["value"])
    values = {f"{NAME}/consistency/mismatch": f"{MISMATCH:g}"}
    if r.empty:
        return values | {f"{NAME}/consistency/ran": "0", f"{NAME}/consistency/any-off": "0"}
    off = r[(r > MISMATCH) | (r < 1 / MISMATCH)]
    return values | {
        f"{NAME}/consistency/ran": "1", f"{NAME}/consistency/ratio-min": ratio(r.min()),
        f"{NAME}/consistency/ratio-max": ratio(r.max()), f"{NAME}/consistency/ratio-median": ratio(r.median()),
        f"{NAME}/consistency/ratio": span(r, unit="$\\times$"),
        f"{NAME}/consistency/off": str(len(off)), f"{NAME}/consistency/any-off": flag(len(off)),
        f"{NAME}/consistency/off-cells": words(f"{cell_name(f, e, a)} ({ratio(x)}$\\times$)"
                                               for (_, f, e, a), x in off.items()) or "--"}


def larger_half(share: str) -> str:
    """Which half of the backward pass took the larger share, from the input's share as printed."""
    return "neither" if float(share) == 50 else "the input" if float(share) > 50 else "the weights"


def split_values(run: Run) -> dict[str, str]:
    """Backward to the input as a percentage of the convolutions' backward, per framework: median over the networks
    and range (engines of a framework share the fraction); '--' for a framework without layer-wise cells."""
    phases = engine_phases(run.tidy)
    fractions = phases.drop_duplicates(["setup", "arch", "config"]).dropna(subset=["input_fraction"])
    networks = fractions.drop_duplicates(["framework", "arch", "config"])
    values = {f"{NAME}/split/ran": flag(len(fractions))}
    frameworks = sorted(set(FRAMEWORK_ORDER) | set(networks["framework"]), key=lambda f: setup_rank(f"{f}-"))
    shares, larger = [], {}
    for framework in frameworks:
        x = networks[networks["framework"] == framework]["input_fraction"]
        key = f"{NAME}/split/{framework}-input-percent"
        if x.empty:
            values |= {key: "--", f"{key}-span": "--", f"{NAME}/split/{framework}-larger": "--"}
            continue
        share, spread = f"{100 * x.median():.0f}", span(100 * x, lambda v: f"{v:.0f}")  # '35' where every network is
        values |= {key: share, f"{key}-span": spread, f"{NAME}/split/{framework}-larger": larger_half(share)}
        over = f" (median; {spread}\\,\\% over the networks)" if spread != share else ""  # no range over one
        shares.append(f"{share}\\,\\%{over} in {escape(framework_name(framework))}")
        larger.setdefault(larger_half(share), []).append(escape(framework_name(framework)))
    values[f"{NAME}/split/shares"] = words(shares) or "--"
    everywhere = len(larger) == 1 and len(shares) > 1  # both frameworks agree: say it once
    frameworks = "both frameworks" if len(shares) == 2 else "every framework"
    values[f"{NAME}/split/larger"] = (f"{next(iter(larger))} in {frameworks}" if everywhere else
                                      words(f"{half} in {words(names)}" for half, names in larger.items())) or "--"
    return values


def roofline_values(run: Run) -> dict[str, str]:
    """The ceilings each framework's processes measured (median), and what share of its roof each speed cell's step
    reached (every study's speed cells): least, most, median, how many lie left of the ridge or above the roof."""
    df = run.tidy
    ok = df[(df["status"] == "ok") & (df["task"] == "speed")] if len(df) else df
    ceilings = ok[ok["phase"] == "ceiling"].drop_duplicates(["cell_id", "metric"]) if len(ok) else ok
    values = {f"{NAME}/roofline/ceilings": flag(len(ceilings))}
    present = set(ceilings["framework"]) if len(ceilings) else set()
    for framework in sorted(set(FRAMEWORK_ORDER) | present, key=lambda f: setup_rank(f"{f}-")):
        rows = ceilings[ceilings["framework"] == framework] if len(ceilings) else ceilings
        gemm, bandwidth = (rows[rows["metric"] == m]["value"].median() / 1e9 if len(rows) else float("nan")
                           for m in ("gemm_flops", "memory_bandwidth"))
        values |= {f"{NAME}/roofline/{framework}-gemm-gflops": sig3(gemm) if pd.notna(gemm) else "--",
                   f"{NAME}/roofline/{framework}-bandwidth-gbs": sig3(bandwidth) if pd.notna(bandwidth) else "--"}
    cells = (ok.pivot_table(index=["cell_id", "framework", "engine", "arch"], columns="metric", values="value")
             if len(ceilings) else pd.DataFrame())
    if "ceiling_fraction" not in cells:
        return values | {f"{NAME}/roofline/ran": "0", f"{NAME}/roofline/steps": "0", f"{NAME}/roofline/any-above": "0"}
    cells = cells.dropna(subset=["ceiling_fraction"]).reset_index()
    fraction = cells["ceiling_fraction"]
    low, high = cells.loc[fraction.idxmin()], cells.loc[fraction.idxmax()]
    above = cells[fraction > 1]
    bound = int((cells["attainable_flops"] < cells["gemm_flops"]).sum())  # left of the ridge point: memory-bound
    name = lambda r: cell_name(r["framework"], r["engine"], r["arch"])  # noqa: E731
    return values | {
        f"{NAME}/roofline/ran": "1",
        f"{NAME}/roofline/percent-min": percent(low["ceiling_fraction"]), f"{NAME}/roofline/min-cell": name(low),
        f"{NAME}/roofline/percent-max": percent(high["ceiling_fraction"]), f"{NAME}/roofline/max-cell": name(high),
        f"{NAME}/roofline/percent-median": percent(fraction.median()), f"{NAME}/roofline/steps": str(len(cells)),
        f"{NAME}/roofline/memory-bound": str(bound),
        f"{NAME}/roofline/memory-bound-share": share_words(bound, len(cells), "step"),
        f"{NAME}/roofline/memory-bound-verb": "lies" if 1 in (bound, len(cells)) else "lie",
        f"{NAME}/roofline/above": str(len(above)), f"{NAME}/roofline/any-above": flag(len(above))}


def values(run: Run) -> dict[str, str]:
    """Every number of the engines study (claim.py adds the backward claim's)."""
    return {**scope_values(run), **derived_values(run), **compile_values(run), **inductor_values(run), **consistency_values(run),
            **split_values(run), **roofline_values(run),
            **roof_values(run.tidy, f"{NAME}/roof", "speed"), **claim_values(run), **shared_values(run),
            **unresolved_times(run, time_values(run.study(NAME)))}

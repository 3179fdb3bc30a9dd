"""A reference run's sweeps, drawn as the run's own: the overhead study's cells (time against batch per engine, with the
CUDA graph of the whole step beside eager; convbench.analysis.sweep's figure and fit table) and the size study (the
share of the GPU's peak as batch and image grow)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from convbench.analysis.formatting import escape, kind_phrase, percent, ratio
from convbench.analysis.latex import placeholder
from convbench.analysis.plotting import placeholder as empty_figure
from convbench.analysis.query import launch_medians
from convbench.analysis.reference.runs import KEY, ReferenceRun, record_time, reference_runs
from convbench.analysis.stats import time_interval
from convbench.analysis.study import Run
from convbench.analysis.sweep import draw_sweep, fit_table, sweep_times


def swept(run: Run) -> tuple[ReferenceRun | None, Run | None]:
    """The first fp32 reference run with overhead cells, and it as a Run for the overhead study's code."""
    for ref in reference_runs(run.reference).values():
        if not ref.tf32 and not sweep_times(ref.tidy).empty:
            return ref, dataclasses.replace(run, tidy=ref.tidy, samples=ref.samples, environment=ref.environment)
    return None, None


def draw_overhead(run: Run, path: Path) -> Path:
    ref, as_run = swept(run)
    if ref is None:
        return empty_figure(path, "No reference run with cells of the overhead study.")
    return draw_sweep(as_run, path)


def overhead_table(run: Run) -> str:
    ref, as_run = swept(run)
    if ref is None:
        return placeholder("Reference run: step time against batch.", "tab:reference-overhead",
                           "No reference run with cells of the overhead study.")
    return fit_table(as_run, "tab:reference-overhead", f"Reference run {escape(ref.name)} on {escape(ref.device)}, "
                                                       f"{ref.line()}. ")


def graph_values(run: Run) -> dict[str, str]:
    """Eager over the CUDA graph of the whole step, for the sweep's first and last network (keys .../first/... and
    .../last/..., named by .../first-arch), at its smallest and largest batch: the step times and their ratio with its
    interval over launch medians paired by launch (the two engines' cells ran in the same launches). Every key is
    written, '--' where the data give none."""
    ref, _ = swept(run)
    values = {f"{KEY}/graph/ran": "0"}
    df = ref.tidy[(ref.tidy["study"] == "overhead") & (ref.tidy["task"] == "speed") & (ref.tidy["status"] == "ok")] \
        if ref is not None else pd.DataFrame()
    if df.empty or not {"eager", "cudagraph"} <= set(df["engine"]):
        return values
    batches, archs = sorted(df["batch_size"].unique()), list(dict.fromkeys(df["arch"]))
    size = df["image_size"].min()  # one image size: the sweep is over the batch
    values |= {f"{KEY}/graph/ran": "1", f"{KEY}/graph/smallest-batch": f"{batches[0]:.0f}",
               f"{KEY}/graph/largest-batch": f"{batches[-1]:.0f}", f"{KEY}/graph/image-size": f"{size:.0f}"}
    for which, arch in (("first", archs[0]), ("last", archs[-1])):
        values[f"{KEY}/graph/{which}-arch"] = escape(arch)
        for end, batch in (("smallest", batches[0]), ("largest", batches[-1])):
            key = f"{KEY}/graph/{which}/{end}"
            values |= {f"{key}/{k}": "--" for k in ("eager-ms", "graph-ms", "ratio", "lo", "hi")} | {f"{key}/kind": ""}
            cells = df[(df["arch"] == arch) & (df["batch_size"] == batch) & (df["image_size"] == size)]
            eager, graph = (cells[cells["engine"] == e] for e in ("eager", "cudagraph"))
            samples = [ref.samples[ref.samples["cell_id"].isin(c["cell_id"]) & (ref.samples["phase"] == "step")]
                       ["value"] for c in (eager, graph)]
            found = time_interval(launch_medians(eager, "step"), launch_medians(graph, "step"), *samples)
            if found is not None:
                r, lo, hi, _, kind = found
                values[f"{key}/kind"] = f"; {kind_phrase([kind])}"  # the interval's kind, named in the sentence
                values |= {f"{key}/eager-ms": f"{record_time(eager, 'step') * 1e3:.3g}",
                           f"{key}/graph-ms": f"{record_time(graph, 'step') * 1e3:.3g}",
                           f"{key}/ratio": ratio(r), f"{key}/lo": ratio(lo), f"{key}/hi": ratio(hi)}
    return values


def size_values(run: Run) -> dict[str, str]:
    """The size study's share of the theoretical peak, for its first and last network, at its smallest and largest
    batch x image size (keys reference/size/<first|last>/<smallest|largest>-percent, '--' where a cell failed), and
    whether it rose from the smallest to the largest (reference/size/<first|last>/trend: 'rises' or 'does not rise')."""
    values = {f"{KEY}/size/ran": "0"}
    for ref in reference_runs(run.reference).values():
        df = ref.tidy
        peak = df[(df["study"] == "size") & (df["metric"] == "peak_fraction") & (df["phase"] == "step")
                  & (df["status"] == "ok")] if not ref.tf32 and len(df) else pd.DataFrame()
        if peak.empty:
            continue
        sizes = peak.assign(work=peak["batch_size"] * peak["image_size"] ** 2).sort_values("work")
        small, large = sizes.iloc[0], sizes.iloc[-1]
        archs = list(dict.fromkeys(peak["arch"]))
        values |= {f"{KEY}/size/ran": "1",
                   f"{KEY}/size/smallest": f"batch {small['batch_size']:.0f} at {small['image_size']:.0f}$^2$",
                   f"{KEY}/size/largest": f"batch {large['batch_size']:.0f} at {large['image_size']:.0f}$^2$"}
        for which, arch in (("first", archs[0]), ("last", archs[-1])):
            g = peak[peak["arch"] == arch]
            share = {end: g[(g["batch_size"] == at["batch_size"]) & (g["image_size"] == at["image_size"])]["value"]
                     for end, at in (("smallest", small), ("largest", large))}
            values[f"{KEY}/size/{which}-arch"] = escape(arch)
            for end, hit in share.items():
                values[f"{KEY}/size/{which}/{end}-percent"] = percent(hit.median()) if len(hit) else "--"
            rises = all(len(h) for h in share.values()) and share["largest"].median() > share["smallest"].median()
            values[f"{KEY}/size/{which}/trend"] = "rises" if rises else "does not rise"
        # the second network's verb only where it differs: 'rises for k3 (...) and for k7 (...)'
        same = values[f"{KEY}/size/first/trend"] == values[f"{KEY}/size/last/trend"]
        values[f"{KEY}/size/last/trend-again"] = "" if same else values[f"{KEY}/size/last/trend"] + " "  # its space
        break
    return values

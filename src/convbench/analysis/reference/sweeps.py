"""A reference run's sweeps, drawn as the run's own: the overhead study's cells (time against batch per engine, with the
CUDA graph of the whole step beside eager; convbench.analysis.sweep's figure and fit table) and the size study (the share of the
GPU's peak as batch and image grow)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from convbench.analysis.formatting import escape, percent, ratio
from convbench.analysis.latex import placeholder
from convbench.analysis.plotting import placeholder as empty_figure
from convbench.analysis.reference.runs import ReferenceRun, reference_runs
from convbench.analysis.stats import time_interval
from convbench.analysis.study import Run
from convbench.analysis.sweep import draw_sweep, fit_table, sweep_times
from convbench.analysis.tidy import launch_medians

KEY = "reference"


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
    """Eager over the CUDA graph of the whole step, per network, at the sweep's smallest and largest batch: the step
    times and their ratio with its interval over launch medians (keys reference/graph/<arch>/<smallest|largest>/...)."""
    ref, _ = swept(run)
    values = {f"{KEY}/graph/ran": "0"}
    if ref is None:
        return values
    df = ref.tidy[(ref.tidy["study"] == "overhead") & (ref.tidy["task"] == "speed") & (ref.tidy["status"] == "ok")]
    if not {"eager", "cudagraph"} <= set(df["engine"]):
        return values
    batches = sorted(df["batch_size"].unique())
    values |= {f"{KEY}/graph/ran": "1", f"{KEY}/graph/smallest-batch": f"{batches[0]:.0f}",
               f"{KEY}/graph/largest-batch": f"{batches[-1]:.0f}",
               f"{KEY}/graph/archs": ", ".join(escape(a) for a in dict.fromkeys(df["arch"]))}
    for arch in dict.fromkeys(df["arch"]):
        for end, batch in (("smallest", batches[0]), ("largest", batches[-1])):
            where = {"arch": arch, "batch_size": batch}
            eager, graph = (df[(df["engine"] == e) & (df["arch"] == arch) & (df["batch_size"] == batch)]
                            for e in ("eager", "cudagraph"))
            samples = [ref.samples[(ref.samples["cell_id"].isin(c["cell_id"])) & (ref.samples["phase"] == "step")]
                       ["value"] for c in (eager, graph)]
            found = time_interval(launch_medians(eager, "step", **where), launch_medians(graph, "step", **where),
                                  *samples)
            if found is None:
                continue
            r, lo, hi, *_ = found
            key = f"{KEY}/graph/{arch}/{end}"
            values |= {f"{key}/eager-ms": f"{samples[0].median() * 1e3:.3g}",
                       f"{key}/graph-ms": f"{samples[1].median() * 1e3:.3g}",
                       f"{key}/ratio": ratio(r), f"{key}/lo": ratio(lo), f"{key}/hi": ratio(hi)}
    return values


def size_values(run: Run) -> dict[str, str]:
    """The size study's share of the theoretical peak, per network, at its smallest and largest batch x image size
    (keys reference/size/<arch>/<smallest|largest>-percent), and those sizes."""
    values = {f"{KEY}/size/ran": "0"}
    for ref in reference_runs(run.reference).values():
        df = ref.tidy
        peak = df[(df["study"] == "size") & (df["metric"] == "peak_fraction") & (df["phase"] == "step")
                  & (df["status"] == "ok")] if not ref.tf32 and len(df) else pd.DataFrame()
        if peak.empty:
            continue
        sizes = peak.assign(work=peak["batch_size"] * peak["image_size"] ** 2).sort_values("work")
        small, large = sizes.iloc[0], sizes.iloc[-1]
        values |= {f"{KEY}/size/ran": "1", f"{KEY}/size/archs": ", ".join(escape(a) for a in dict.fromkeys(peak["arch"])),
                   f"{KEY}/size/smallest": f"batch {small['batch_size']:.0f} at {small['image_size']:.0f}$^2$",
                   f"{KEY}/size/largest": f"batch {large['batch_size']:.0f} at {large['image_size']:.0f}$^2$"}
        for arch, g in peak.groupby("arch", sort=False):
            for end, (batch, size) in (("smallest", small[["batch_size", "image_size"]]),
                                       ("largest", large[["batch_size", "image_size"]])):
                hit = g[(g["batch_size"] == batch) & (g["image_size"] == size)]["value"]
                values[f"{KEY}/size/{arch}/{end}-percent"] = percent(hit.median()) if len(hit) else "--"
        break
    return values

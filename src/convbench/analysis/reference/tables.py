"""The reference study's tables: TF32 against fp32 (main text), and every run's speed and layer cells (appendix), each
with the hardware, versions, commit and flags of its runs under it."""
from __future__ import annotations

import pandas as pd

from convbench.analysis.formatting import (
    bracketed,
    escape,
    kind_phrase,
    margin_text,
    ms,
    percent,
    setup_label,
    setup_rank,
)
from convbench.analysis.latex import blank_repeats, booktabs
from convbench.analysis.reference.runs import PHASES, ReferenceRun, reference_runs, tf32_pairs
from convbench.analysis.reference.values import compare
from convbench.analysis.stats import MARGINS, Margins, Outcome
from convbench.analysis.study import Run

LAYER_PHASES = {"forward": "Conv fwd", "backward_input": "Bwd input", "backward_weight": "Bwd weight",
                "activation_forward": "Act fwd", "activation_backward": "Act bwd"}


def interval(r, lo, hi, outcome) -> str:
    text = bracketed(r, lo, hi)
    return rf"\textbf{{{text}}}" if outcome in (Outcome.FASTER, Outcome.SLOWER) else text


def pair_table(fp32: ReferenceRun, tf32: ReferenceRun, margins: Margins = MARGINS) -> str:
    c = compare(fp32, tf32, margins).drop_duplicates(["arch", "phase"])
    if c.empty:
        return ""
    rows = []
    for arch, g in c.groupby("arch", sort=False):
        phase = g.set_index("phase")
        row = {"Network": arch}
        if "step" in phase.index:
            row |= {"fp32 step": ms(phase.loc["step", "fp32"]), "TF32 step": ms(phase.loc["step", "tf32"])}
        rows.append(row | {p.capitalize(): interval(*phase.loc[p, ["ratio", "lo", "hi", "outcome"]]) if p in phase.index
                           else "--" for p in PHASES})
    table = pd.DataFrame(rows)
    caption = (f"{escape(tf32.device)}: TF32 over fp32 per phase, time ratio [95\\,\\% "
               f"{kind_phrase(c['kind'])}: the runs ran one after the other, unpaired]; bold: the whole interval lies "
               f"beyond the margin ({margin_text(margins, ('time',))}). Step times in ms. "
               f"fp32 ({escape(fp32.name)}): {fp32.line()}. TF32 ({escape(tf32.name)}): {tf32.line()}.")
    return booktabs(table, caption, f"tab:reference-tf32-{tf32.name}", "l" + "r" * (len(table.columns) - 1),
                    raw=tuple(table.columns[1:]), size=r"\footnotesize")


def tf32_table(run: Run) -> str:
    """TF32 against fp32 for every pair of runs that differ only in it; a comment where there is none."""
    tables = [pair_table(*p, run.margins) for p in tf32_pairs(reference_runs(run.reference))]
    return "\n".join(t for t in tables if t) or "%\n"


def speed_table(run: ReferenceRun) -> str:
    df = run.tidy
    speed = df[df["task"] == "speed"]
    peak = df[(df["metric"] == "peak_fraction") & (df["phase"] == "step")].set_index("cell_id")["value"]
    rows = []
    for cell_id, cell in speed.groupby("cell_id", sort=False):
        first = cell.iloc[0]
        row = {"Study": first["study"], "Network": first["arch"],
               "Setup": setup_label(first["framework"], first["engine"]), "rank": setup_rank(first["setup"]),
               "Maps": first["maps"],  # the GPU networks' own sizes: maps per block, batch x image
               "Input": f"{int(first['batch_size'])}$\\times${int(first['image_size'])}$^2$",
               "_batch": int(first["batch_size"])}
        if (cell["status"] == "failed").all():
            rows.append(row | {p.capitalize(): "failed" for p in PHASES} | {"Peak %": "--"})
            continue
        times = cell[cell["metric"] == "time"].set_index("phase")
        rows.append(row | {p.capitalize(): ms(times.loc[p, "value"], times.loc[p, "iqr"]) if p in times.index
                           else "--" for p in PHASES}
                    | {"Peak %": percent(peak[cell_id]) if cell_id in peak else "--"})
    if not rows:
        return ""
    table = pd.DataFrame(rows).sort_values(["Study", "Network", "rank", "_batch"], kind="stable")
    table = table.drop(columns=["rank", "_batch"])
    table = blank_repeats(table.reset_index(drop=True), ["Study", "Network"])
    caption = (f"Reference run {escape(run.name)} on {escape(run.device)}: time per training step and phase, in ms, "
               f"median (IQR), with the maps leaving each block and the input (batch $\\times$ image size) of each "
               f"network as the run recorded them; "
               f"Peak: useful FLOP/s of the step as a percentage of the GPU's theoretical peak. "
               f"{run.line()}.")
    return booktabs(table, caption, f"tab:reference-{run.name}", "llll" + "r" * (len(table.columns) - 4),
                    raw=("Input",), size=r"\scriptsize", colsep="3pt")


def layer_table(run: ReferenceRun) -> str:
    df = run.tidy
    layers = df[(df["task"] == "layers") & (df["metric"] == "time") & (df["status"] == "ok")]
    if layers.empty:
        return ""
    table = (layers.pivot_table(index="arch", columns="phase", values="value", aggfunc="first")
             .reindex(columns=list(LAYER_PHASES)).map(ms).rename(columns=LAYER_PHASES).reset_index()
             .rename(columns={"arch": "Shape"}))
    batch = ", ".join(str(b) for b in sorted(layers["batch_size"].unique()))
    caption = (f"Reference run {escape(run.name)} on {escape(run.device)}: one convolution and its activation, each "
               f"direction on its own, in ms (median), batch {batch}; shape c$C$-o$O$-k$K$-s$S$: $C$ input channels, "
               f"$O$ filters, $K \\times K$ kernel, $S \\times S$ maps. "
               f"{run.line()}.")
    return booktabs(table, caption, f"tab:reference-layers-{run.name}", "l" + "r" * len(LAYER_PHASES),
                    size=r"\scriptsize")


def cells_table(run: Run) -> str:
    """Every reference run's speed and layer cells (the appendix), or a comment where none is committed."""
    tables = [t for r in reference_runs(run.reference).values() for t in (speed_table(r), layer_table(r)) if t]
    return "\n".join(tables) or "%\n"

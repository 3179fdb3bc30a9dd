"""The engines study: every engine of both frameworks on the same networks. Where the backward time goes (phases per
engine, the backward split estimated from layer-wise cells), how timing was done (direct or derived, consistency of
phases and step, compile time), the roofline and the fairness table of every setting."""
from __future__ import annotations

import re
import textwrap

import numpy as np
import pandas as pd

from convbench.analysis.layers import input_fraction, layer_times
from convbench.analysis.tables import booktabs, escape, percent, placeholder, ragged, ratio, seconds, sig3, tt, words
from convbench.analysis.tidy import (ARCH_ORDER, LAYER_TASK, WARNINGS_SEP, framework_name, setup_label, setup_rank,
                                     summarise, with_config)

STUDY = "engines"
MISMATCH = 1.5  # phases whose sum is further than this factor from the whole step do not describe that step


def ordered(engines) -> list[str]:
    return sorted(set(engines), key=lambda e: setup_rank(f"-{e}"))


def study_cells(df: pd.DataFrame) -> pd.DataFrame:
    """One row per speed cell of the engines study (failed ones too), in arch order."""
    cells = with_config(df[(df["study"] == STUDY) & (df["task"] == "speed")].drop_duplicates("cell_id"))
    return cells.sort_values([*ARCH_ORDER, "config"], kind="stable")


def engine_phases(df: pd.DataFrame) -> pd.DataFrame:
    """Forward, backward (split into input and weight by input_fraction where the layer cells allow) and optimizer
    medians per setup x arch x config of the engines study, long; a failed cell has one row with status 'failed'."""
    times = summarise(df[(df["study"] == STUDY) & (df["task"] == "speed")], "time")
    layers = layer_times(df)
    rows = []
    for keys, group in times.groupby(["setup", "framework", "engine", "arch", "config"], sort=False):
        phase = group.set_index("phase")["value"]
        first = group.iloc[0]
        fraction = input_fraction(first["convs"], first["framework"], first["batch_size"], layers)
        values = {"forward": phase.get("forward"), "optimizer": phase.get("optimizer")}
        if np.isnan(fraction):
            values["backward"] = phase.get("backward")
        else:
            values |= {"backward_input": phase.get("backward") * fraction,
                       "backward_weight": phase.get("backward") * (1 - fraction)}
        base = dict(zip(["setup", "framework", "engine", "arch", "config"], keys), status="ok", input_fraction=fraction)
        rows += [{**base, "phase": p, "value": v} for p, v in values.items() if v is not None]
    failed = study_cells(df)
    timed = times.set_index(["setup", "arch", "config"]).index
    failed = failed[(failed["status"] == "failed") & ~failed.set_index(["setup", "arch", "config"]).index.isin(timed)]
    rows += [{"setup": r.setup, "framework": r.framework, "engine": r.engine, "arch": r.arch, "config": r.config,
              "status": "failed", "input_fraction": np.nan, "phase": None, "value": np.nan}
             for r in failed.itertuples()]
    out = pd.DataFrame(rows, columns=["setup", "framework", "engine", "arch", "config", "status", "input_fraction",
                                      "phase", "value"])
    return out.assign(Setup=[setup_label(f, e) for f, e in zip(out["framework"], out["engine"])])


def short(warning: str, width: int = 80) -> str:
    """The first line, shortened; without Markdown backticks, which LaTeX would set as quotes."""
    first = warning.strip().splitlines()[0] if warning.strip() else warning
    return textwrap.shorten(first.replace("`", ""), width, placeholder="...")


def setup_order(cells: pd.DataFrame) -> list[str]:
    return sorted(set(cells["setup"]), key=setup_rank)


def fairness(df: pd.DataFrame, env: pd.DataFrame) -> pd.DataFrame:
    """Every setting that matters for a fair comparison, per setup of the speed cells: rows are settings, columns
    setups. A setting only the failed cells of a setup would have recorded shows 'failed'."""
    df = df[df["task"] == "speed"]
    cells = df.drop_duplicates("cell_id")
    cells = cells.merge(env.drop(columns=["framework", "engine", "status", "started"], errors="ignore"), on="cell_id",
                        how="left")
    compile_time = df[df["metric"] == "compile_time"].groupby("setup")["value"].median()
    flags = [c for c in cells.columns if c.startswith("flags.") and c != "flags.layout"]
    fields = {"Cells": None, "Phases timed": "phase_method", "Threads (intra/inter)": "threads",
              "Layout": "flags.layout", "Precision": "engine.precision", "Batch": "batch_size",
              "Optimizer": "engine.optimizer", "Compile time (median)": "compile",
              **{c.removeprefix("flags."): c for c in flags}, "Warnings": "engine.warnings"}
    missing = pd.Series(np.nan, cells.index)
    intra, inter = (cells.get(f"threads.{c}", missing) for c in ("intra_op", "inter_op"))
    cells = cells.assign(
        threads=[f"{i:g}/{o:g}" if pd.notna(i) and pd.notna(o) else None for i, o in zip(intra, inter)],
        compile=cells["setup"].map(lambda s: seconds(compile_time[s], " ") if s in compile_time else None))
    table = {}
    for setup in setup_order(cells):
        rows = cells[cells["setup"] == setup]
        ok, failed = (rows["status"] == "ok").sum(), (rows["status"] == "failed").sum()
        column = {"Cells": f"{ok} ok" + (f", {failed} failed" if failed else "")}
        for name, field in list(fields.items())[1:]:
            values = rows[field].dropna() if field in rows else pd.Series(dtype=object)
            if field == "engine.warnings":
                values = values.map(lambda w: "; ".join(dict.fromkeys(short(x) for x in str(w).split(WARNINGS_SEP))))
            distinct = list(dict.fromkeys(str(v) for v in values if str(v) != ""))
            column[name] = "; ".join(distinct) if distinct else ("failed" if ok == 0 else "--")
        table[setup_label(*setup.split("-", 1))] = column
    return pd.DataFrame(table)


def fairness_table(df: pd.DataFrame, env: pd.DataFrame) -> str:
    caption = ("What each setup ran with, as its speed cells recorded it: threads, data layout, precision, batch, "
               "how the phases were timed (direct: between device synchronisations; derived: from separately compiled "
               "programs), the optimizer's implementation, compile and trace time (first step minus a median step), "
               "framework flags and warnings (shortened).")
    table = fairness(df, env)
    if table.empty:
        return placeholder(caption, "tab:fairness", "This run has no timed cells.")
    # Dotted names (keras.optimizers.SGD) are longer than a column: let a line break after their dots.
    table = table.map(lambda v: re.sub(r"\.(?=[A-Za-z])", r".\\allowbreak{}", escape(v)))
    table = table.reset_index().rename(columns={"index": "Setting"})
    n = len(table.columns) - 1
    return booktabs(table, caption, "tab:fairness", ragged(0.12) + ragged(0.75 / n) * n, raw=tuple(table.columns[1:]),
                    size=r"\scriptsize")


def setup_words(rows: pd.DataFrame) -> str:
    return words(escape(setup_label(*s.split("-", 1))) for s in setup_order(rows))


def study_values(df: pd.DataFrame, samples: pd.DataFrame) -> dict[str, str]:
    """Scope, timing method, derived-phase noise, compile time and failures of the engines study."""
    cells = study_cells(df)
    layer_cells = df[df["task"] == LAYER_TASK]["cell_id"].nunique()
    if cells.empty:
        none = (f"This run has no {tt(STUDY)} study, so it does not time compiled engines or test the claim about the "
                f"backward pass across engines.")
        return {"engines/scope": none, "engines/intro": none,
                "engines/setups": "(none)", "engines/methods-sentence": "", "engines/derived-sentence": "",
                "engines/compile-sentence": "", "engines/failed-sentence": "", "engines/consistency-sentence": ""}
    archs = words(tt(a) for a in dict.fromkeys(cells["arch"]))
    layers = f", splits the backward pass with {layer_cells} layer-wise cells" if layer_cells else ""
    values = {"engines/setups": setup_words(cells), "engines/archs": archs,
              "engines/scope": (f"The {tt(STUDY)} study times {len(setup_order(cells))} setups ({setup_words(cells)}) "
                                f"on the networks {archs}{layers}, and tests the claim about the backward pass on one "
                                f"device.")}
    values["engines/intro"] = (values["engines/scope"] + " Section~\\ref{sec:engines} reports where the backward time "
                               "goes and what became of the claim.")
    ok = cells[cells["status"] == "ok"]
    direct, derived = (ok[ok["phase_method"] == m] for m in ("direct", "derived"))
    text = []
    if len(direct):
        text.append(f"{setup_words(direct)} timed each phase directly, between device synchronisations")
    if len(derived):
        text.append(f"{setup_words(derived)} cannot stop a compiled step between its phases, so their phases were "
                    f"derived from three separately compiled programs timed per repeat (forward with loss; forward and "
                    f"backward; the whole step): backward is the second minus the first, optimizer the third minus "
                    f"the second")
    values["engines/methods-sentence"] = ("; ".join(text) + ".") if text else ""
    derived_samples = samples[samples["cell_id"].isin(derived["cell_id"])] if len(samples) else samples
    negative = []
    for phase in ["backward", "optimizer"]:
        x = derived_samples[derived_samples["phase"] == phase]["value"] if len(derived_samples) else pd.Series()
        if (x < 0).any():
            negative.append(f"{(x < 0).sum()} of the {len(x)} derived {phase} samples were negative (the smallest "
                            f"{sig3(x.min() * 1e3)}\\,ms)")
    values["engines/derived-sentence"] = "" if derived.empty else (
        ("Subtraction carries the noise of two programs into a phase: " + words(negative) + ".") if negative
        else "No derived sample was negative.")
    timed = df[df["cell_id"].isin(ok["cell_id"])]
    compile_s = timed[timed["metric"] == "compile_time"].groupby("setup")["value"].median()
    values["engines/compile-sentence"] = "" if compile_s.empty else (
        "The first step took longer than a median step, the cost of tracing and compiling paid once before the timed "
        "repeats, by " + words(f"{seconds(compile_s[s])} in {escape(setup_label(*s.split('-', 1)))}"
                              for s in setup_order(ok) if s in compile_s) + " (median over the networks).")
    values["engines/consistency-sentence"] = consistency(timed)
    failed = cells[cells["status"] == "failed"]
    which = words(f"{escape(setup_label(r.framework, r.engine))} on {tt(r.arch)} ({escape(r.error or 'no error text')})"
                  for r in failed.itertuples())
    values["engines/failed-sentence"] = (
        f"All {len(cells)} cells of the {tt(STUDY)} study succeeded." if failed.empty else
        f"{len(failed)} of the {len(cells)} cells of the {tt(STUDY)} study failed: {which}; the tables show them "
        f"as failed.")
    return values


def consistency(df: pd.DataFrame) -> str:
    """How the sum of a cell's phases (timed one by one) compares with its whole step (timed on its own)."""
    times = df[(df["metric"] == "time") & df["phase"].isin(["total", "step"])]
    both = times.pivot_table(index=["cell_id", "framework", "engine", "arch"], columns="phase", values="value").dropna()
    if not {"total", "step"} <= set(both.columns) or both.empty:
        return ""
    r = both["total"] / both["step"]
    text = (f"A step's phases, timed one by one, summed to {ratio(r.min())}--{ratio(r.max())}$\\times$ the whole step "
            f"timed on its own (median {ratio(r.median())}$\\times$).")
    off = r[(r > MISMATCH) | (r < 1 / MISMATCH)]
    if len(off):
        cells = words(f"{escape(setup_label(f, e))} on {tt(a)} ({ratio(x)}$\\times$)"
                      for (_, f, e, a), x in off.items())
        text += (f" In {cells} the sum is more than {MISMATCH:g}$\\times$ off, so there the phases do not describe the "
                 f"step that the whole-step time measures, and their backward times carry that doubt into the claim.")
    return text


def split_values(df: pd.DataFrame) -> dict[str, str]:
    phases = engine_phases(df)
    fractions = phases.drop_duplicates(["setup", "arch", "config"]).dropna(subset=["input_fraction"])
    if fractions.empty:
        note = ("The backward pass is not split: this run has no layer-wise cells for these networks' convolutions, "
                "so backward is shown whole.")
        return {"engines/bars-note": note, "engines/split-sentence": note}
    values, parts, larger = {}, [], {"the weights": [], "the input": []}
    networks = fractions.drop_duplicates(["framework", "arch", "config"])  # engines of a framework share the fraction
    for framework, x in networks.groupby("framework", sort=False)["input_fraction"]:
        share, lo, hi = (f"{100 * v:.0f}" for v in (x.median(), x.min(), x.max()))
        values[f"engines/split/{framework}-input-percent"] = share
        spread = f" (range {lo}--{hi}\\,\\% over the networks)" if lo != hi else ""
        parts.append(f"{share}\\,\\% in {escape(framework_name(framework))}{spread}")
        if share != "50":
            larger["the input" if float(share) > 50 else "the weights"].append(escape(framework_name(framework)))
    values["engines/bars-note"] = (
        "Backward to the input and backward to the weights are estimated from layer-wise timings: each cell's "
        "measured backward is split in proportion to the summed layer-wise medians of its network's convolutions "
        "(same framework, eager), without backward to the input images.")
    values["engines/split-sentence"] = (
        "Summed layer-wise over each network's convolutions, backward to the input made up " + words(parts)
        + " of the convolutions' backward time (median over the networks)"
        + "".join(f"; backward to {half} took the larger share in {words(names)}"
                  for half, names in larger.items() if names)
        + ".")
    return values


def roofline_values(df: pd.DataFrame) -> dict[str, str]:
    ok = df[(df["status"] == "ok") & (df["task"] == "speed")]
    ceilings = ok[ok["phase"] == "ceiling"].drop_duplicates(["cell_id", "metric"])
    if ceilings.empty:
        return {"engines/roofline-sentence": "This run measured no compute or bandwidth ceilings."}
    values, parts = {}, []
    for framework in sorted(ceilings["framework"].unique(), key=lambda f: setup_rank(f"{f}-")):
        rows = ceilings[ceilings["framework"] == framework]
        gemm = rows[rows["metric"] == "gemm_flops"]["value"].median() / 1e9
        bandwidth = rows[rows["metric"] == "memory_bandwidth"]["value"].median() / 1e9
        values |= {f"engines/roofline/{framework}-gemm-gflops": sig3(gemm),
                   f"engines/roofline/{framework}-bandwidth-gbs": sig3(bandwidth)}
        parts.append(f"{sig3(gemm)}\\,GFLOP/s and {sig3(bandwidth)}\\,GB/s in {escape(framework_name(framework))}'s "
                     f"processes")
    text = [f"The ceilings measured before the cells (median of each process's repeats) were {words(parts)}."]
    cells = ok.pivot_table(index=["cell_id", "framework", "engine", "arch"], columns="metric", values="value")
    if "ceiling_fraction" in cells:
        cells = cells.dropna(subset=["ceiling_fraction"]).reset_index()
        fraction = cells["ceiling_fraction"]
        low, high = cells.loc[fraction.idxmin()], cells.loc[fraction.idxmax()]
        memory_bound = (cells["attainable_flops"] < cells["gemm_flops"]).sum()
        name = lambda r: f"{escape(setup_label(r['framework'], r['engine']))} on {tt(r['arch'])}"  # noqa: E731
        values |= {"engines/roofline/percent-min": percent(low["ceiling_fraction"]),
                   "engines/roofline/percent-max": percent(high["ceiling_fraction"]),
                   "engines/roofline/percent-median": percent(fraction.median())}
        text.append(f"Against the roof of its own process, a training step reached from "
                    f"{percent(low['ceiling_fraction'])}\\,\\% ({name(low)}) to "
                    f"{percent(high['ceiling_fraction'])}\\,\\% ({name(high)}) of what its arithmetic intensity allows "
                    f"(median {percent(fraction.median())}\\,\\%); "
                    f"{memory_bound} of the {len(cells)} steps lie left of the ridge point, where memory bandwidth and "
                    f"not arithmetic sets the roof.")
        above = cells[fraction > 1]
        if len(above):
            text.append(f"{len(above)} of the {len(cells)} steps ran faster than their roof allows, so in their "
                        f"processes at least one ceiling was measured below what the machine can do (for instance "
                        f"while another process shared the cores): "
                        f"{words(dict.fromkeys(name(r) for _, r in above.iterrows()))}.")
    values["engines/roofline-sentence"] = " ".join(text)
    return values


def engine_values(df: pd.DataFrame, samples: pd.DataFrame) -> dict[str, str]:
    return {**study_values(df, samples), **split_values(df), **roofline_values(df)}

"""Issue 4: the kernel size picked by hand in a grid search (the kernel study) against the kernel size and the number of
filters learned in training (the learned study), from the result records alone (no torch, no tensorflow).

Hand-picked (study "kernel", tasks "train" and "speed"): per unit (framework-engine, with the device appended where the
cells ran on more than one) and architecture, the final test accuracy as a mean with a t interval over seeds, the
parameters and forward FLOPs per example of the trained network, and the forward and backward time of the speed cells.
Which architectures match the reference (a single 3x3 convolution per block) at equal width and which at about equal
parameters is read from the widths, not from the names.

Learned (study "learned", task "train"): the radius of each masked convolution and the open maps of each gated one over
the epochs (epoch 0 is the initialisation, read from the spec), the kernel sizes and maps that crop and prune kept, the
shrunk network's accuracy, parameters and step time against the masked/gated network it was cut from and against the
hand-picked networks, the largest logit difference between the two (crop and prune are exact), and what the grid search
cost against one learned run (wall-clock time of the cells).

Every sentence that states a direction chooses its words from the numbers as printed. analyse_learned returns the fixed
keys below in every run (a sentence says what is missing when the run lacks the cells), plus keys per unit and
architecture:

  kernelsweep/{scope,interval,matching-sentence,best-sentence,pareto-sentence,failed-sentence}
  kernelsweep/<unit>/<arch>/{test-accuracy,test-accuracy-ci,seeds,params}
  learned/{ramp,threshold,beta,gamma,zeta}                   constants of the method, read from convbench.learned
  learned/{scope,data-sentence,optimizer-sentence,mask-sentence,gate-sentence,radius-sentence,kept-sentence,
           exact-sentence,max-logit-difference,shrunk-sentence,verdict-size,verdict-accuracy,cost-sentence,
           failed-sentence,seeds-threat,recipe-threat}
  learned/<unit>/<arch>/{test-accuracy,trained-test-accuracy,params,kernels,maps,step-ratio,cost-ratio,
                         max-logit-difference}
"""
from __future__ import annotations

import inspect
import math
import re
from collections import Counter
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from convbench import learned as method
from convbench.analysis.figures import placeholder as blank_figure
from convbench.analysis.figures import plt  # pyplot on the Agg backend, with the figures' seaborn theme
from convbench.analysis.tables import (booktabs, escape, ms, percent, placeholder, ratio, sig3, thousands, tt,
                                       words)
from convbench.analysis.tidy import LEVEL, describe, last_line, setup_label, setup_rank
from convbench.analysis.tidy import t_interval as tidy_t_interval

SWEEP, LEARNED = "kernel", "learned"
CI = f"{LEVEL * 100:.0f}\\,\\% CI"
EXACT = 1e-4  # the largest logit difference that float32 rounding explains; above it crop or prune changed the net
EQUAL_PARAMS = 0.25  # a narrower or wider arch within this relative distance of the reference's parameters matches them
STATE = re.compile(r"blocks\.(\d+)\.(radius|open_maps)$")
RAMP = inspect.signature(method.ramp_mask).parameters["ramp"].default
THRESHOLD = inspect.signature(method.shrink).parameters["threshold"].default

FIGURES = ("learned_pareto", "learned_radius", "learned_maps")
FIXED = ["kernelsweep/scope", "kernelsweep/interval", "kernelsweep/matching-sentence", "kernelsweep/best-sentence",
         "kernelsweep/pareto-sentence", "kernelsweep/failed-sentence",
         "learned/ramp", "learned/threshold", "learned/beta", "learned/gamma", "learned/zeta",
         "learned/scope", "learned/data-sentence", "learned/optimizer-sentence", "learned/mask-sentence",
         "learned/gate-sentence", "learned/radius-sentence", "learned/kept-sentence", "learned/exact-sentence",
         "learned/max-logit-difference", "learned/shrunk-sentence", "learned/verdict-size",
         "learned/verdict-accuracy", "learned/cost-sentence", "learned/failed-sentence", "learned/seeds-threat",
         "learned/recipe-threat"]


# ---- numbers ---------------------------------------------------------------------------------------

def t_interval(values, level: float = LEVEL) -> tuple[float, float, int]:
    """tidy.t_interval over the values a run produced (a missing or diverged value is left out)."""
    return tidy_t_interval([v for v in values if v is not None and np.isfinite(v)], level)


def pareto_front(params, accuracy) -> np.ndarray:
    """True for every point that no other point dominates (at most as many parameters and at least the accuracy, one
    of the two strictly); points with a missing value are never on the front."""
    p, a = np.asarray(params, float), np.asarray(accuracy, float)
    ok = np.isfinite(p) & np.isfinite(a)
    front = np.zeros(len(p), bool)
    for i in np.flatnonzero(ok):
        dominated = ok & (p <= p[i]) & (a >= a[i]) & ((p < p[i]) | (a > a[i]))
        front[i] = not dominated.any()
    return front


def printed(fraction) -> float:
    """A fraction as the percentage the text prints: verdicts compare these, so words never contradict digits."""
    return float(percent(fraction))


def pm(mean: float, ci: float) -> str:
    if pd.isna(mean):
        return "--"
    return percent(mean) if pd.isna(ci) else f"{percent(mean)}\\,$\\pm$\\,{percent(ci)}"


def sci(x: float) -> str:
    """A small positive number as LaTeX, e.g. $3.8\\times10^{-6}$; 0 as 0."""
    if pd.isna(x):
        return "--"
    if x == 0:
        return "0"
    exponent = math.floor(math.log10(abs(x)))
    mantissa = x / 10**exponent
    if round(mantissa, 1) >= 10:
        mantissa, exponent = mantissa / 10, exponent + 1
    return f"${mantissa:.1f}\\times10^{{{exponent}}}$"


def number(x: float) -> str:
    """A setting as written in the config (2.0, 0.05), a minus sign in math mode."""
    text = f"{x:g}"
    return f"${text}$" if text.startswith("-") else text


def fraction(x: float) -> str:
    f = Fraction(x).limit_denominator(20)
    return f"{f.numerator}/{f.denominator}" if f.denominator != 1 and abs(float(f) - x) < 1e-9 else f"{x:g}"


def kernel_words(k) -> str:
    return f"{int(k)}$\\times${int(k)}"


def seconds_text(s: float) -> str:
    return f"{sig3(s)}\\,s"


NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine"}


def count_words(n: int, noun: str) -> str:
    return f"{NUMBER_WORDS.get(n, n)} {noun}{'' if n == 1 else 's'}"


# ---- records -> cells ------------------------------------------------------------------------------

def _unit_namer(records: list[dict]):
    """(unit, label) of a cell: framework-engine, with the device where the two studies ran on more than one."""
    cells = [r["cell"] for r in records if r["cell"]["study"] in (SWEEP, LEARNED)]
    many = len({(c["device"], c.get("devices", 1)) for c in cells}) > 1

    def name(cell) -> tuple[str, str]:
        unit, label = f"{cell['framework']}-{cell['engine']}", setup_label(cell["framework"], cell["engine"])
        if many:
            n = cell.get("devices", 1)
            unit, label = f"{unit}-{cell['device']}{n}", f"{label} ({cell['device']}, {count_words(n, 'device')})"
        return unit, label
    return name


def _base(record: dict, name) -> dict:
    cell, counts = record["cell"], record.get("counts") or {}
    blocks, settings = cell["arch"]["blocks"], cell.get("settings") or {}
    epochs = (record.get("training") or {}).get("epochs") or [] if record["status"] == "ok" else []
    dataset = (record.get("training") or {}).get("dataset") or {}
    unit, label = name(cell)
    usable = record["status"] == "ok" and bool(epochs or cell["task"] != "train")  # a train cell needs its epochs
    error = None if usable else (last_line(record.get("error")) or "no error text") if record["status"] != "ok" else \
        "the record holds no epochs"
    return {
        "cell_id": record["cell_id"], "unit": unit, "label": label, "framework": cell["framework"],
        "engine": cell["engine"], "arch": cell["arch"]["name"], "description": describe(cell["arch"]),
        "seed": cell["seed"], "train_fraction": float(cell.get("train_fraction", 1.0)),
        "status": "ok" if usable else "failed", "error": error,
        "kernels": tuple(b["kernel"] for b in blocks), "depths": tuple(b.get("depth", 1) for b in blocks),
        "widths": tuple(b["width"] for b in blocks), "maps": tuple(b["width"] // b.get("pieces", 1) for b in blocks),
        "params": counts.get("params"), "flops": counts.get("flops_forward"), "wall": record.get("wall_s"),
        "epochs": len(epochs), "final": epochs[-1] if epochs else {}, "history": epochs,
        "optimizer": settings.get("optimizer", "sgd"), "lr": settings.get("lr"), "momentum": settings.get("momentum"),
        "planned_epochs": settings.get("epochs"), "dataset": dataset.get("name"),
        "train_size": dataset.get("train_size"), "test_size": dataset.get("test_size"),
        "image_size": cell.get("image_size"), "in_channels": cell["arch"].get("in_channels"),
        "batch_size": cell.get("batch_size"), "blocks": blocks,
    }


def sweep_cells(records: list[dict]) -> pd.DataFrame:
    """One row per train cell of the kernel study at its largest training fraction."""
    name = _unit_namer(records)
    rows = [_base(r, name) for r in records if r["cell"]["study"] == SWEEP and r["cell"]["task"] == "train"]
    cells = pd.DataFrame(rows)
    if cells.empty:
        return cells
    cells["test"] = [f.get("test_accuracy", math.nan) for f in cells["final"]]
    cells = cells[cells["train_fraction"] == cells["train_fraction"].max()]
    return in_unit_order(cells)


def in_unit_order(cells: pd.DataFrame) -> pd.DataFrame:
    """Frameworks and engines in the tables' order (PyTorch first), records' order within."""
    rank = cells["unit"].map(setup_rank)
    return cells.iloc[sorted(range(len(cells)), key=lambda i: (rank.iloc[i], cells["unit"].iloc[i]))].reset_index(
        drop=True)


def speed_summary(records: list[dict]) -> pd.DataFrame:
    """Per unit and arch of the kernel study's speed cells: forward and backward median and IQR (median over seeds),
    or status failed where every cell failed."""
    name = _unit_namer(records)
    rows = []
    for r in records:
        cell = r["cell"]
        if cell["study"] != SWEEP or cell["task"] != "speed":
            continue
        phases = (r.get("timings") or {}).get("phases") or {} if r["status"] == "ok" else {}
        row = {"unit": name(cell)[0], "arch": cell["arch"]["name"], "ok": r["status"] == "ok",
               "image_size": cell.get("image_size"), "in_channels": cell["arch"].get("in_channels"),
               "batch_size": cell.get("batch_size")}
        for phase in ("forward", "backward"):
            summary = phases.get(phase) or {}
            row[phase], row[f"{phase}_iqr"] = summary.get("median", math.nan), summary.get("iqr", math.nan)
        rows.append(row)
    columns = ["unit", "arch", "ok", "image_size", "in_channels", "batch_size", "forward", "forward_iqr", "backward",
               "backward_iqr"]
    speed = pd.DataFrame(rows, columns=columns)
    if speed.empty:
        return speed
    return speed.groupby(["unit", "arch"], sort=False).agg(
        ok=("ok", "any"), image_size=("image_size", "first"), in_channels=("in_channels", "first"),
        batch_size=("batch_size", "first"), forward=("forward", "median"), forward_iqr=("forward_iqr", "median"),
        backward=("backward", "median"), backward_iqr=("backward_iqr", "median")).reset_index()


def reference_arch(cells: pd.DataFrame) -> str | None:
    """The single-3x3-convolution arch at the most common widths: what the others are matched against."""
    archs = cells.drop_duplicates("arch")
    if archs.empty:
        return None
    common = Counter(archs["widths"])
    plain = archs[[set(k) == {3} and set(d) == {1} for k, d in zip(archs["kernels"], archs["depths"])]]
    pool = plain if len(plain) else archs
    return max(pool.itertuples(), key=lambda a: (common[a.widths], -len(a.arch))).arch


def matching(cells: pd.DataFrame) -> dict[str, str]:
    """Per arch: 'reference', 'equal width' (the reference's widths), 'equal params' (other widths, parameters within
    EQUAL_PARAMS of the reference's) or 'other'."""
    ref = reference_arch(cells)
    if ref is None:
        return {}
    archs = cells.drop_duplicates("arch").set_index("arch")
    ref_widths, ref_params = archs.loc[ref, "widths"], archs.loc[ref, "params"]
    out = {}
    for arch, a in archs.iterrows():
        if arch == ref:
            out[arch] = "reference"
        elif a["widths"] == ref_widths:
            out[arch] = "equal width"
        elif pd.notna(a["params"]) and ref_params and abs(a["params"] / ref_params - 1) <= EQUAL_PARAMS:
            out[arch] = "equal params"
        else:
            out[arch] = "other"
    return out


MATCH_RANK = {"reference": 0, "equal width": 0, "equal params": 1, "other": 2}


def sweep_stats(records: list[dict]) -> pd.DataFrame:
    """Per unit and arch: test accuracy mean, CI half-width and seeds; failed cells; params, FLOPs; matching; whether
    on the unit's Pareto front (mean accuracy against parameters); forward and backward time of the speed cells."""
    cells = sweep_cells(records)
    columns = ["unit", "label", "framework", "engine", "arch", "description", "kernels", "depths", "widths", "maps",
               "params", "flops", "mean", "ci", "seeds", "failed", "cells", "errors", "matching", "front",
               "speed_ok", "forward", "forward_iqr", "backward", "backward_iqr", "rf"]
    if cells.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for (unit, arch), g in cells.groupby(["unit", "arch"], sort=False):
        ok = g[g["status"] == "ok"]
        mean, ci, n = t_interval(ok["test"])
        first = g.iloc[0]
        params = g["params"].dropna()
        flops = g["flops"].dropna()
        rows.append({**{c: first[c] for c in ["unit", "label", "framework", "engine", "arch", "description",
                                                "kernels", "depths", "widths", "maps"]},
                     "params": params.iloc[0] if len(params) else math.nan,
                     "flops": flops.iloc[0] if len(flops) else math.nan, "mean": mean, "ci": ci, "seeds": n,
                     "failed": int((g["status"] == "failed").sum()), "cells": len(g),
                     "errors": sorted({e for e in g["error"] if isinstance(e, str) and e})})
    out = pd.DataFrame(rows)
    match = matching(cells)
    out["matching"] = out["arch"].map(match)
    out["rf"] = [d[0] * (k[0] - 1) + 1 for k, d in zip(out["kernels"], out["depths"])]
    out["front"] = False
    for unit, g in out.groupby("unit"):
        out.loc[g.index, "front"] = pareto_front(g["params"], [printed(m) if pd.notna(m) else m for m in g["mean"]])
    speed = speed_summary(records)
    if speed.empty:
        out = out.assign(speed_ok=np.nan, forward=np.nan, forward_iqr=np.nan, backward=np.nan, backward_iqr=np.nan)
    else:
        out = out.merge(speed.drop(columns=["image_size", "in_channels", "batch_size"]).rename(columns={"ok": "speed_ok"}),
                        on=["unit", "arch"], how="left")
    out = out.assign(_u=out["unit"].map(lambda u: setup_rank(u)), _m=out["matching"].map(MATCH_RANK))
    out = out.sort_values(["_u", "unit", "_m", "rf", "depths", "arch"], kind="stable")
    return out.drop(columns=["_u", "_m"]).reset_index(drop=True)[columns]


def learned_cells(records: list[dict]) -> pd.DataFrame:
    """One row per train cell of the learned study with what crop and prune kept."""
    name = _unit_namer(records)
    rows = []
    for r in records:
        cell = r["cell"]
        if cell["study"] != LEARNED or cell["task"] != "train":
            continue
        row = _base(r, name)
        blocks = row["blocks"]
        shrunk = (r.get("learned") or {}) if row["status"] == "ok" else {}
        step = shrunk.get("step") or {}
        kept = shrunk.get("kept") or []
        row.update({
            "size": any(b.get("init_radius") is not None for b in blocks), "gates": any(b.get("gates") for b in blocks),
            "init_radius": tuple(b.get("init_radius") for b in blocks),
            "radius_penalty": tuple(b.get("radius_penalty", 0.0) for b in blocks),
            "init_log_alpha": tuple(b.get("init_log_alpha") if b.get("gates") else None for b in blocks),
            "l0_penalty": tuple(b.get("l0_penalty", 0.0) for b in blocks),
            "kept_kernels": tuple(k["kernel"] for k in kept) or None, "kept_maps": tuple(k["maps"] for k in kept) or None,
            "trained_test": row["final"].get("test_accuracy", math.nan), "test": shrunk.get("test_accuracy", math.nan),
            "params_initial": row["params"], "flops_initial": row["flops"],
            "shrunk_params": shrunk.get("params", math.nan), "shrunk_flops": shrunk.get("flops_forward", math.nan),
            "max_diff": shrunk.get("max_logit_difference", math.nan),
            "shrunk_shape": tuple((b["kernel"], b["width"], b.get("depth", 1), b.get("pieces", 1))
                                  for b in (shrunk.get("shrunk_arch") or {}).get("blocks", [])) or None,
        })
        for net in ("learned", "shrunk"):
            summary = step.get(net) or {}
            row[f"step_{net}"], row[f"step_{net}_iqr"] = summary.get("median", math.nan), summary.get("iqr", math.nan)
        if row["status"] == "ok" and not kept:
            row.update(status="failed", error="the record holds no shrunk network")
        rows.append(row)
    return in_unit_order(pd.DataFrame(rows)) if rows else pd.DataFrame()


def kind_words(row) -> str:
    """What an arch of the learned study learns, from its blocks."""
    parts = (["kernel size"] if row["size"] else []) + (["number of filters"] if row["gates"] else [])
    return " and ".join(parts) or "nothing"


def trajectories(cells: pd.DataFrame) -> pd.DataFrame:
    """Long table: unit, label, arch, seed, epoch (0 = initialisation, from the spec), block, quantity (radius or
    open_maps), value."""
    rows = []
    for c in cells.itertuples():
        if c.status != "ok":
            continue
        for i, b in enumerate(c.blocks):
            if b.get("init_radius") is not None:
                rows.append([c.unit, c.label, c.arch, c.seed, 0, i, "radius", float(b["init_radius"])])
            if b.get("gates"):
                open_maps = int(method.test_gate(b.get("init_log_alpha", 2.0)) > 0) * c.maps[i]
                rows.append([c.unit, c.label, c.arch, c.seed, 0, i, "open_maps", float(open_maps)])
        for epoch in c.history:
            for key, value in (epoch.get("learned") or {}).items():
                m = STATE.match(key)
                if m and value is not None:
                    rows.append([c.unit, c.label, c.arch, c.seed, epoch.get("epoch"), int(m[1]), m[2], float(value)])
    return pd.DataFrame(rows, columns=["unit", "label", "arch", "seed", "epoch", "block", "quantity", "value"])


def learned_stats(cells: pd.DataFrame) -> pd.DataFrame:
    """Per unit and learned arch, over its ok seeds."""
    rows = []
    if cells.empty:
        return pd.DataFrame(rows)
    for (unit, arch), g in cells.groupby(["unit", "arch"], sort=False):
        ok = g[g["status"] == "ok"]
        first = g.iloc[0]
        test, test_ci, n = t_interval(ok["test"])
        trained, trained_ci, _ = t_interval(ok["trained_test"])
        kernels = Counter(ok["kept_kernels"])
        mode, mode_n = kernels.most_common(1)[0] if kernels else (None, 0)
        maps = np.array(list(ok["kept_maps"])) if n else np.zeros((0, len(first["maps"])))
        rows.append({
            **{c: first[c] for c in ["unit", "label", "framework", "engine", "arch", "description", "size", "gates",
                                     "kernels", "maps", "widths", "init_radius", "radius_penalty", "init_log_alpha",
                                     "l0_penalty", "params_initial", "flops_initial", "optimizer", "lr",
                                     "planned_epochs"]},
            "seeds": n, "failed": int((g["status"] == "failed").sum()), "errors": sorted({e for e in g["error"] if isinstance(e, str) and e}),
            "test": test, "test_ci": test_ci, "trained": trained, "trained_ci": trained_ci,
            "kept_kernels": mode, "kernels_agree": mode_n, "all_kernels": kernels,
            "maps_mean": maps.mean(axis=0) if n else None, "maps_min": maps.min(axis=0) if n else None,
            "maps_max": maps.max(axis=0) if n else None,
            "shrunk_params": ok["shrunk_params"].median() if n else math.nan,
            "shrunk_params_all": sorted(set(ok["shrunk_params"].dropna())),
            "shrunk_flops": ok["shrunk_flops"].median() if n else math.nan,
            "shrunk_shape": Counter(ok["shrunk_shape"]).most_common(1)[0][0] if n else None,
            "max_diff": ok["max_diff"].max() if n else math.nan,
            "step_learned": ok["step_learned"].median() if n else math.nan,
            "step_learned_iqr": ok["step_learned_iqr"].median() if n else math.nan,
            "step_shrunk": ok["step_shrunk"].median() if n else math.nan,
            "step_shrunk_iqr": ok["step_shrunk_iqr"].median() if n else math.nan,
            "wall": g["wall"].dropna().mean() if g["wall"].notna().any() else math.nan,
            "epochs": int(ok["epochs"].max()) if n else 0,
            "points": list(zip(ok["shrunk_params"], ok["test"])),
        })
    out = pd.DataFrame(rows)
    out = out.assign(_u=out["unit"].map(setup_rank), _k=[(not s, a) for s, a in zip(out["size"], out["arch"])])
    return out.sort_values(["_u", "unit", "_k"]).drop(columns=["_u", "_k"]).reset_index(drop=True)


# ---- sentences ------------------------------------------------------------------------------------

def blocks_words(values, fmt=str) -> str:
    return words(f"{fmt(v)} in block {i + 1}" for i, v in enumerate(values))


def interval_words(seeds: pd.Series) -> str:
    lo, hi = (int(seeds.min()), int(seeds.max())) if len(seeds) else (0, 0)
    if hi == 0:
        return "no seeds"
    if hi == 1:
        return "one seed per network and setup, so the accuracies carry no interval"
    n = f"{lo}" if lo == hi else f"{lo} to {hi}"
    extra = "; a network with one seed has no interval" if lo == 1 else ""
    return (f"mean\\,$\\pm$\\,half-width of the {CI} of the mean over {n} seeds (t distribution, "
            f"seeds$-$1 degrees of freedom){extra}")


def sweep_values(sweep: pd.DataFrame, cells: pd.DataFrame) -> dict[str, str]:
    values = {}
    if sweep.empty:
        none = f"This run has no training cells of the {tt(SWEEP)} study, so there is no grid search to report."
        return {k: none for k in ["kernelsweep/scope", "kernelsweep/best-sentence", "kernelsweep/pareto-sentence",
                                  "kernelsweep/matching-sentence"]} | {
            "kernelsweep/interval": "no seeds", "kernelsweep/failed-sentence": "No kernel-study cell failed."}
    archs = list(dict.fromkeys(sweep["arch"]))
    units = list(dict.fromkeys(sweep["label"]))
    first = cells.iloc[0]
    epochs = sorted({e for e in cells["planned_epochs"].dropna()})
    optimizers = sorted({optimizer_words(o, m) for o, m in zip(cells["optimizer"], cells["momentum"])})
    values["kernelsweep/interval"] = interval_words(sweep["seeds"])
    values["kernelsweep/scope"] = (
        f"The grid search of the {tt(SWEEP)} study trained {count_words(len(archs), 'architecture')} "
        f"({words(tt(a) for a in archs)}) in {words(escape(u) for u in units)}, "
        f"{seed_count_words(sweep['seeds'])}, for {words(f'{e:g}' for e in epochs)} epochs with "
        f"{words(optimizers)} on {dataset_words(first)}. Accuracies are {values['kernelsweep/interval']}.")
    for r in sweep.itertuples():
        base = f"kernelsweep/{r.unit}/{r.arch}"
        values[f"{base}/seeds"] = str(r.seeds)
        if pd.notna(r.params):
            values[f"{base}/params"] = thousands(r.params)
        if pd.notna(r.mean):
            values[f"{base}/test-accuracy"] = percent(r.mean)
        if pd.notna(r.ci):
            values[f"{base}/test-accuracy-ci"] = percent(r.ci)
    # Matching to the reference, from the widths.
    arch_rows = sweep.drop_duplicates("arch").set_index("arch")
    ref = next((a for a, m in arch_rows["matching"].items() if m == "reference"), None)
    groups = {m: [a for a, x in arch_rows["matching"].items() if x == m] for m in ("equal width", "equal params", "other")}
    parts = []
    if groups["equal width"]:
        parts.append(f"{words(tt(a) for a in groups['equal width'])} {'has' if len(groups['equal width']) == 1 else 'have'} "
                     f"its filters per block ({', '.join(str(w) for w in arch_rows.loc[ref, 'widths'])}): equal width")
    if groups["equal params"]:
        parts.append(f"{words(tt(a) for a in groups['equal params'])} "
                     f"{'is' if len(groups['equal params']) == 1 else 'are'} narrower or wider to stay within "
                     f"{EQUAL_PARAMS * 100:.0f}\\,\\% of its {thousands(arch_rows.loc[ref, 'params'])} parameters: "
                     f"equal parameters")
    if groups["other"]:
        parts.append(f"{words(tt(a) for a in groups['other'])} match{'es' if len(groups['other']) == 1 else ''} "
                     f"neither")
    values["kernelsweep/matching-sentence"] = (
        f"Against {tt(ref)}, a single 3$\\times$3 convolution per block, " + "; ".join(parts) + "."
        if parts else f"All architectures of the grid have the widths of {tt(ref)}.")
    # The best per unit, and the front.
    best, fronts = [], []
    for unit, g in sweep.groupby("unit", sort=False):
        ranked = rank(g)
        label = escape(g["label"].iloc[0])
        if ranked.empty:
            best.append(f"In {label} no hand-picked network finished training.")
            continue
        b = ranked.iloc[0]
        text = (f"In {label} {tt(b.arch)} reached the highest mean test accuracy, {pm(b['mean'], b['ci'])}\\,\\% "
                f"with {thousands(b.params)} parameters")
        tied = [r for r in ranked.iloc[1:].itertuples() if overlap(r, b)]
        if pd.isna(b["ci"]):
            text += " (one seed: ranked by that run alone)"
        elif tied:
            text += (f"; the intervals of {words(tt(r.arch) for r in tied)} overlap its interval, so the grid cannot "
                     f"tell {'it' if len(tied) == 1 else 'them'} apart from the best")
            smaller = [r for r in tied if r.params < b.params]
            if smaller:
                s = min(smaller, key=lambda r: r.params)
                text += f"; the smallest of {'it' if len(tied) == 1 else 'them'}, {tt(s.arch)}, has " \
                        f"{thousands(s.params)} parameters"
        else:
            text += "; no other network's interval overlaps its interval"
        best.append(text + ".")
        front = g[g["front"]].sort_values("params")
        fronts.append(f"in {label}, {words(tt(a) for a in front['arch'])}")
    values["kernelsweep/best-sentence"] = " ".join(best)
    values["kernelsweep/pareto-sentence"] = (
        "On the Pareto front of mean test accuracy against parameters (no other hand-picked network is both at most "
        "as large and at least as accurate, one of the two strictly) lie, " + "; ".join(fronts) + "." if fronts else
        "No hand-picked network finished training, so there is no Pareto front.")
    failed = cells[cells["status"] == "failed"]
    values["kernelsweep/failed-sentence"] = sentence(
        f"{count_words(len(failed), 'training cell')} of the {tt(SWEEP)} study failed "
        f"({words(tt(c) for c in failed['cell_id'])}); the tables show the seeds that finished."
        if len(failed) else f"No training cell of the {tt(SWEEP)} study failed.")
    return values


def rank(g: pd.DataFrame) -> pd.DataFrame:
    """Finished networks by accuracy as printed (highest first), then by parameters (fewest first)."""
    done = g[g["seeds"] > 0]
    return done.assign(_p=[-printed(m) for m in done["mean"]]).sort_values(["_p", "params", "arch"]).drop(columns="_p")


def overlap(a, b) -> bool:
    """Whether the printed intervals (mean +- ci) of two rows share a point; False without both intervals."""
    (mean_a, ci_a), (mean_b, ci_b) = ((x["mean"], x["ci"]) if isinstance(x, pd.Series) else (x.mean, x.ci)
                                      for x in (a, b))
    if pd.isna(ci_a) or pd.isna(ci_b):
        return False
    (lo_a, hi_a), (lo_b, hi_b) = ((printed(m) - printed(c), printed(m) + printed(c))
                                  for m, c in ((mean_a, ci_a), (mean_b, ci_b)))
    return lo_a <= hi_b and lo_b <= hi_a


def optimizer_words(optimizer, momentum) -> str:
    name = str(optimizer).lower()
    if name == "sgd":
        return f"SGD with momentum {momentum:g}" if momentum else "SGD"
    return {"adam": "Adam", "adamw": "AdamW"}.get(name, escape(optimizer))


def dataset_words(row) -> str:
    if not row["dataset"]:
        return "the configured data set"
    size = (f" ({row['train_size']:.0f} training and {row['test_size']:.0f} test images of "
            f"{row['image_size']:.0f}$\\times${row['image_size']:.0f} pixels)" if pd.notna(row["train_size"]) else "")
    return f"{tt(row['dataset'])}{size}"


def constant_values() -> dict[str, str]:
    return {"learned/ramp": f"{RAMP:g}", "learned/threshold": f"{THRESHOLD:g}", "learned/beta": fraction(method.BETA),
            "learned/gamma": f"{method.GAMMA:g}", "learned/zeta": f"{method.ZETA:g}"}


def data_sentence(lcells: pd.DataFrame, scells: pd.DataFrame) -> str:
    cells = pd.concat([c for c in (lcells, scells) if len(c)]) if len(lcells) or len(scells) else lcells
    cells = cells[cells["dataset"].notna()] if len(cells) else cells
    if cells.empty:
        return "This run trained no network of either study."
    sets = words(dataset_words(r) for _, r in cells.drop_duplicates(["dataset", "train_size", "test_size"]).iterrows())
    which = "Both studies train" if len(lcells) and len(scells) else "The networks of this section train"
    return f"{which} and test on {sets}."


def learned_values(lstats: pd.DataFrame, lcells: pd.DataFrame, traj: pd.DataFrame, sweep: pd.DataFrame,
                   scells: pd.DataFrame) -> dict[str, str]:
    values = constant_values() | {"learned/data-sentence": data_sentence(lcells, scells)}
    if lcells.empty:
        study = tt(LEARNED)
        return values | {
            "learned/scope": f"This run has no training cells of the {study} study, so it learned nothing to report.",
            "learned/optimizer-sentence": f"This run trained no network of the {study} study.",
            "learned/mask-sentence": "No network of this run learns its kernel size.",
            "learned/gate-sentence": "No network of this run learns its number of filters.",
            "learned/radius-sentence": "With no learned network in this run, there are no learned radii to follow.",
            "learned/kept-sentence": "With no learned network in this run, no gate decided which maps to keep.",
            "learned/exact-sentence": "No network was cropped or pruned in this run, so there is no exactness check.",
            "learned/max-logit-difference": "--",
            "learned/shrunk-sentence": "No network was shrunk in this run.",
            "learned/verdict-size": "With no learned kernel size, there is nothing to hold against the grid search.",
            "learned/verdict-accuracy": "With no shrunk network, there is no accuracy to hold against the grid search.",
            "learned/cost-sentence": "With no learned run, there is no cost to compare with the grid search's.",
            "learned/failed-sentence": f"No cell of the {study} study ran.",
            "learned/seeds-threat": f"This run has no cells of the {study} study.",
            "learned/recipe-threat": "With no learned network, training recipes cannot differ between the studies.",
        }
    archs = list(dict.fromkeys(lcells["arch"]))
    units = list(dict.fromkeys(lcells["label"]))
    kinds = {a: kind_words(lcells[lcells["arch"] == a].iloc[0]) for a in archs}
    seeds = lstats["seeds"]
    values["learned/scope"] = (
        f"The {tt(LEARNED)} study trained {words(f'{tt(a)} (learning the {kinds[a]})' for a in archs)} in "
        f"{words(escape(u) for u in units)}, {seed_count_words(seeds)}.")
    values["learned/optimizer-sentence"] = optimizer_sentence(lcells, scells)
    values["learned/recipe-threat"] = recipe_threat(lcells, scells)
    values["learned/mask-sentence"] = mask_sentence(lcells)
    values["learned/gate-sentence"] = gate_sentence(lcells)
    values["learned/radius-sentence"] = radius_sentence(lstats, traj)
    values["learned/kept-sentence"] = kept_sentence(lstats)
    values.update(exact_values(lstats))
    values["learned/shrunk-sentence"] = shrunk_sentence(lstats, sweep)
    values["learned/verdict-size"] = size_verdict(lstats, sweep)
    values["learned/verdict-accuracy"] = accuracy_verdict(lstats, sweep)
    cost, ratios = cost_sentence(lcells, scells)
    values["learned/cost-sentence"] = cost
    failed = lcells[lcells["status"] == "failed"]
    values["learned/failed-sentence"] = sentence(
        f"{count_words(len(failed), 'cell')} of the {tt(LEARNED)} study failed: "
        + "; ".join(f"{tt(r.cell_id)} ({escape(r.error or 'no error text')})" for r in failed.itertuples()) + "."
        if len(failed) else f"No cell of the {tt(LEARNED)} study failed.")
    values["learned/seeds-threat"] = (
        f"The {tt(LEARNED)} study ran one seed per network and setup in this run: its accuracies carry no interval, and "
        f"one initialisation decides what was learned." if seeds.max() <= 1 else
        f"The {tt(LEARNED)} study ran {seed_count_words(seeds)}; what one seed learned may differ from what another "
        f"does.")
    for r in lstats.itertuples():
        base = f"learned/{r.unit}/{r.arch}"
        if r.seeds == 0:
            continue
        values[f"{base}/test-accuracy"] = percent(r.test)
        values[f"{base}/trained-test-accuracy"] = percent(r.trained)
        values[f"{base}/params"] = thousands(r.shrunk_params)
        values[f"{base}/kernels"] = ", ".join(str(k) for k in r.kept_kernels)
        values[f"{base}/maps"] = ", ".join(f"{m:.0f}" for m in r.maps_mean)
        values[f"{base}/max-logit-difference"] = sci(r.max_diff)
        if pd.notna(r.step_shrunk) and pd.notna(r.step_learned):
            values[f"{base}/step-ratio"] = ratio(r.step_shrunk / r.step_learned)
    for (unit, arch), (whole, _) in ratios.items():
        values[f"learned/{unit}/{arch}/cost-ratio"] = ratio(whole)
    return values


def seed_count_words(seeds: pd.Series) -> str:
    lo, hi = int(seeds.min()), int(seeds.max())
    if hi == 0:
        return "but no cell finished"
    return f"{count_words(hi, 'seed')} each" if lo == hi else f"{lo} to {hi} seeds each"


def optimizer_sentence(lcells: pd.DataFrame, scells: pd.DataFrame) -> str:
    def how(cells):
        opt = words(sorted({optimizer_words(o, m) for o, m in zip(cells["optimizer"], cells["momentum"])}))
        lr = words(f"{x:g}" for x in sorted(cells["lr"].dropna().unique()))
        epochs = words(f"{x:g}" for x in sorted(cells["planned_epochs"].dropna().unique()))
        return f"{opt} (learning rate {lr}) for {epochs} epochs"
    text = f"The learned networks were trained with {how(lcells)}"
    if len(scells):
        text += f", the hand-picked ones with {how(scells)}"
    return text + "."


def recipe(cells: pd.DataFrame) -> tuple:
    return (tuple(sorted({optimizer_words(o, m) for o, m in zip(cells["optimizer"], cells["momentum"])})),
            tuple(sorted(cells["lr"].dropna().unique())), tuple(sorted(cells["planned_epochs"].dropna().unique())))


def recipe_threat(lcells: pd.DataFrame, scells: pd.DataFrame) -> str:
    if scells.empty:
        return "This run has no hand-picked network whose training could differ from the learned networks'."
    if recipe(lcells) == recipe(scells):
        return ("Both studies train with the same optimizer, learning rate and number of epochs, so accuracy "
                "differences between them are not differences of the training recipe.")
    return ("The two studies train with different recipes (optimizer, learning rate or epochs; see above): part of "
            "any accuracy difference between a learned and a hand-picked network may be the recipe's, not the "
            "architecture's.")


def per_block(lcells: pd.DataFrame, field: str) -> str:
    """One setting of the learned blocks, as one value or per block."""
    rows = lcells.drop_duplicates("arch")
    vals = sorted({v for t in rows[field] for v in t if v is not None})
    return words(number(v) for v in vals)


def mask_sentence(lcells: pd.DataFrame) -> str:
    size = lcells[lcells["size"]]
    if size.empty:
        return "No network of this run learns its kernel size."
    rows = size.drop_duplicates("arch")
    k = sorted({k for r in rows.itertuples() for k, b in zip(r.kernels, r.blocks) if b.get("init_radius") is not None})
    penalty = sorted({p for r in rows.itertuples() for p, b in zip(r.radius_penalty, r.blocks)
                      if b.get("init_radius") is not None})
    return (f"In {words(tt(a) for a in rows['arch'])} every masked convolution holds a "
            f"{words(kernel_words(x) for x in k)} kernel ($K={words(str(x) for x in k)}$) and starts at radius "
            f"$z={per_block(size, 'init_radius')}$; the radius penalty adds {words(number(p) for p in penalty)} times the "
            f"mean radius of each masked convolution, summed over the layers, to the loss of every batch.")


def gate_sentence(lcells: pd.DataFrame) -> str:
    gated = lcells[lcells["gates"]]
    if gated.empty:
        return "No network of this run learns its number of filters."
    rows = gated.drop_duplicates("arch")
    penalty = sorted({p for r in rows.itertuples() for p, b in zip(r.l0_penalty, r.blocks) if b.get("gates")})
    return (f"In {words(tt(a) for a in rows['arch'])} every map has a gate, starting at "
            f"$\\log\\alpha={per_block(gated, 'init_log_alpha')}$ (all gates open); the penalty adds "
            f"{words(number(p) for p in penalty)} times the expected number of open gates of each layer, summed over "
            f"the layers, to the loss of every batch.")


def spread(values) -> str:
    """'1.17' or '1.17 (1.10--1.25 over 5 seeds)'."""
    x = np.asarray(values, float)
    if len(x) == 1:
        return f"{x[0]:.2f}"
    return f"{x.mean():.2f} ({x.min():.2f}--{x.max():.2f} over {len(x)} seeds)"


def agreement(r) -> str:
    """'' where every seed kept the same kernel sizes, else e.g. 'in 2 of 3 seeds; 3x3, 3x3 in 1'."""
    if r.kernels_agree == r.seeds:
        return ""
    others = "; ".join(f"{', '.join(kernel_words(k) for k in ks)} in {n}"
                       for ks, n in r.all_kernels.most_common() if ks != r.kept_kernels)
    return f"in {r.kernels_agree} of {r.seeds} seeds; {others}"


def sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def radius_sentence(lstats: pd.DataFrame, traj: pd.DataFrame) -> str:
    size = lstats[lstats["size"]] if len(lstats) else lstats
    if size.empty:
        return "No network of this run learns its kernel size."
    parts = []
    for r in size.itertuples():
        if r.seeds == 0:
            parts.append(f"in {escape(r.label)} every run of {tt(r.arch)} failed")
            continue
        rad = traj[(traj["unit"] == r.unit) & (traj["arch"] == r.arch) & (traj["quantity"] == "radius")]
        last = rad[rad["epoch"] == rad.groupby("seed")["epoch"].transform("max")]
        blocks = []
        for block, g in last.groupby("block"):
            start = r.init_radius[block]
            blocks.append(f"from {start:.2f} to {spread(g['value'])} in block {block + 1}")
        agree = agreement(r)
        agree = f" ({agree})" if agree else ""
        maxk = words(kernel_words(k) for k in sorted(set(r.kernels)))
        kept = (f"{kernel_words(r.kept_kernels[0])} kernels in {'both blocks' if len(r.kept_kernels) == 2 else 'every block'}"
                if len(set(r.kept_kernels)) == 1 and len(r.kept_kernels) > 1 else
                f"{blocks_words(r.kept_kernels, kernel_words)}")
        parts.append(f"in {escape(r.label)} the mean radius of {tt(r.arch)} went {words(blocks)} over "
                     f"{r.epochs} epochs, and cropping left {kept}{agree}, of {maxk}")
    return "; ".join(parts)[0].upper() + "; ".join(parts)[1:] + "."


def kept_sentence(lstats: pd.DataFrame) -> str:
    gated = lstats[lstats["gates"]] if len(lstats) else lstats
    if gated.empty:
        return "No network of this run learns its number of filters."
    parts = []
    for r in gated.itertuples():
        if r.seeds == 0:
            parts.append(f"in {escape(r.label)} every run of {tt(r.arch)} failed")
            continue
        blocks = []
        for i, initial in enumerate(r.maps):
            kept = (f"{r.maps_mean[i]:.0f}" if r.seeds == 1 or r.maps_min[i] == r.maps_max[i] else
                    f"{r.maps_mean[i]:.1f} ({r.maps_min[i]:.0f}--{r.maps_max[i]:.0f})")
            blocks.append(f"{kept} of {initial}{' maps' if i == 0 else ''} in block {i + 1}")
        mean = "" if r.seeds == 1 else f" (mean, and range, over {r.seeds} seeds)"
        parts.append(f"in {escape(r.label)} the gates of {tt(r.arch)} kept {words(blocks)}{mean}")
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def exact_values(lstats: pd.DataFrame) -> dict[str, str]:
    done = lstats[lstats["seeds"] > 0] if len(lstats) else lstats
    if done.empty or done["max_diff"].isna().all():
        return {"learned/max-logit-difference": "--",
                "learned/exact-sentence": "No learned network of this run was shrunk, so there is no exactness check."}
    worst = done["max_diff"].max()
    each = words(f"{sci(r.max_diff)} for {tt(r.arch)} in {escape(r.label)}" for r in done.itertuples())
    verdict = (f"below {sci(EXACT)}, the order of float32 rounding in these logits: crop and prune left the "
               f"function the network computes unchanged" if worst <= EXACT else
               f"above {sci(EXACT)}, more than float32 rounding explains: crop or prune changed the network")
    return {"learned/max-logit-difference": sci(worst),
            "learned/exact-sentence": (
                f"Over the whole test set, the largest absolute difference between a logit of a shrunk network and "
                f"the same logit of the trained network it was cut from was {each}; at most {sci(worst)}, {verdict}.")}


def same_shape(shape, sweep: pd.DataFrame, unit: str) -> str | None:
    """The hand-picked arch of the unit with the shrunk net's blocks (kernel, filters, depth, pieces), if any."""
    if shape is None:
        return None
    for r in sweep[sweep["unit"] == unit].itertuples():
        if tuple(zip(r.kernels, r.widths, r.depths)) == tuple(s[:3] for s in shape):
            return r.arch
    return None


def time_ratio(a: float, a_iqr: float, b: float, b_iqr: float) -> tuple[float, float, float]:
    """a/b and a range from the quartiles (median -/+ IQR/2) of both."""
    ia, ib = (0.0 if pd.isna(x) else x / 2 for x in (a_iqr, b_iqr))
    return a / b, (a - ia) / (b + ib), (a + ia) / (b - ib) if b > ib else math.inf


def speed_word(lo: float, hi: float, r: float) -> str:
    if float(ratio(lo)) <= 1 <= float(ratio(hi)):
        return "about as fast as"
    return "slower than" if r > 1 else "faster than"


def fewer(a: float, b: float) -> str:
    return "as many parameters as" if a == b else ("fewer parameters than" if a < b else "more parameters than")


def shrunk_sentence(lstats: pd.DataFrame, sweep: pd.DataFrame) -> str:
    parts = []
    for r in lstats.itertuples():
        if r.seeds == 0:
            continue
        text = (f"In {escape(r.label)} the shrunk {tt(r.arch)} has {thousands(r.shrunk_params)} parameters and "
                f"{sig3(r.shrunk_flops / 1e6)} forward MFLOPs per example, against "
                f"{thousands(r.params_initial)} and {sig3(r.flops_initial / 1e6)} of the "
                f"{'masked' if r.size else 'gated'} network it was cut from; its test accuracy is "
                f"{pm(r.test, r.test_ci)}\\,\\% ({pm(r.trained, r.trained_ci)}\\,\\% before shrinking)")
        if pd.notna(r.step_shrunk) and pd.notna(r.step_learned):
            x, lo, hi = time_ratio(r.step_shrunk, r.step_shrunk_iqr, r.step_learned, r.step_learned_iqr)
            text += (f". A training step of it took {ms(r.step_shrunk)}\\,ms against {ms(r.step_learned)}\\,ms: "
                     f"{ratio(x)}$\\times$ the time (quartile-based range {ratio(lo)}--{ratio(hi)}), "
                     f"{speed_word(lo, hi, x)} the {'masked' if r.size else 'gated'} network")
        twin = same_shape(r.shrunk_shape, sweep, r.unit)
        if twin:
            t = sweep[(sweep["unit"] == r.unit) & (sweep["arch"] == twin)].iloc[0]
            text += (f". It has the shape of the hand-picked {tt(twin)}, which reached {pm(t['mean'], t['ci'])}\\,\\% "
                     f"trained from scratch")
        parts.append(text + ".")
    if not parts:
        return f"No network of the {tt(LEARNED)} study finished, so none was shrunk."
    speed = sweep[sweep["forward"].notna()] if "forward" in sweep else sweep
    note = (" Steps of the shrunk networks were timed at the training input (one batch of the training size); "
            "the hand-picked networks' speed cells time a different input (Table~\\ref{tab:learned-sweep}), so against "
            "them the shrunk networks compare by forward FLOPs, not by time." if len(speed) else "")
    return " ".join(parts) + note


def size_verdict(lstats: pd.DataFrame, sweep: pd.DataFrame) -> str:
    """Does the learned kernel size land on the size that the grid search ranks best (accuracy, then parameters)?"""
    size = lstats[lstats["size"]] if len(lstats) else lstats
    if size.empty:
        return "No network of this run learns its kernel size, so there is nothing to hold against the grid search."
    parts = []
    for r in size.itertuples():
        where = f"In {escape(r.label)}"
        if r.seeds == 0:
            parts.append(f"{where} every run of {tt(r.arch)} failed, so it learned no size.")
            continue
        grid = sweep[(sweep["unit"] == r.unit) & (sweep["seeds"] > 0)]
        plain = grid[[set(d) == {1} and len(set(k)) == 1 for d, k in zip(grid["depths"], grid["kernels"])]]
        same = plain[[w == r.widths for w in plain["widths"]]]
        candidates = rank(same if len(same) else plain)
        learned_k = r.kept_kernels
        got = blocks_words(learned_k, kernel_words) if len(set(learned_k)) > 1 else kernel_words(learned_k[0])
        agree = agreement(r)
        agree = f" ({agree})" if agree else ""
        if candidates.empty:
            parts.append(f"{where} {tt(r.arch)} learned {got}{agree}, but the grid search has no finished network of "
                         f"one convolution per block to hold it against.")
            continue
        best = candidates.iloc[0]
        best_k = best["kernels"][0]
        scope = "of one convolution per block" + (" at the same widths" if len(same) else "")
        head = (f"{where} the grid search ranks {tt(best.arch)} ({kernel_words(best_k)}, "
                f"{pm(best['mean'], best['ci'])}\\,\\%) best among its networks {scope} by accuracy, then parameters"
                f"{' (one seed: by that run alone)' if pd.isna(best['ci']) else ''}; {tt(r.arch)} learned {got}{agree}")
        by_k = {row.kernels[0]: row for row in candidates.itertuples()}
        if len(set(learned_k)) > 1:
            tail = (f", a different size per block, which a grid with one size for all blocks does not try; "
                    f"{'one of its blocks' if best_k in learned_k else 'none of its blocks'} learned the best size")
        elif learned_k[0] == best_k:
            tail = ": the size the grid search ranks best"
        elif learned_k[0] not in by_k:
            tail = ", a size the grid search did not try"
        else:
            hit = by_k[learned_k[0]]
            position = list(candidates["arch"]).index(hit.arch) + 1
            if overlap(hit, best):
                tail = (f", the size of {tt(hit.arch)} ({pm(hit.mean, hit.ci)}\\,\\%), whose interval overlaps the "
                        f"best's: the grid search cannot tell the two apart at this number of seeds")
            else:
                apart = "" if pd.isna(hit.ci) or pd.isna(best["ci"]) else ", the intervals apart"
                tail = (f", the size of {tt(hit.arch)} ({pm(hit.mean, hit.ci)}\\,\\%), which the grid search ranks "
                        f"{position} of {len(candidates)}{apart}: not the size it ranks best")
        parts.append(head + tail + ".")
    return " ".join(parts)


def dominated_by(params: float, accuracy: float, grid: pd.DataFrame) -> list[str]:
    """Hand-picked archs both at most as large and at least as accurate (as printed), one of the two strictly."""
    return [g.arch for g in grid.itertuples() if g.seeds > 0 and g.params <= params
            and printed(g.mean) >= printed(accuracy) and (g.params < params or printed(g.mean) > printed(accuracy))]


def accuracy_verdict(lstats: pd.DataFrame, sweep: pd.DataFrame) -> str:
    """Is each shrunk net within the interval of the best hand-picked accuracy, and at fewer or more parameters?"""
    parts = []
    for r in lstats.itertuples():
        where = f"In {escape(r.label)}"
        if r.seeds == 0:
            parts.append(f"{where} every run of {tt(r.arch)} failed.")
            continue
        grid = sweep[sweep["unit"] == r.unit]
        ranked = rank(grid)
        if ranked.empty:
            parts.append(f"{where} no hand-picked network finished to compare the shrunk {tt(r.arch)} with.")
            continue
        best = ranked.iloc[0]
        a, b = printed(r.test), printed(best["mean"])
        numbers = (f"the shrunk {tt(r.arch)} reached {pm(r.test, r.test_ci)}\\,\\% with {thousands(r.shrunk_params)} "
                   f"parameters, the best hand-picked network, {tt(best.arch)}, {pm(best['mean'], best['ci'])}\\,\\% "
                   f"with {thousands(best.params)}")
        if pd.isna(best["ci"]):
            word = "the same accuracy as" if a == b else ("a higher accuracy than" if a > b else "a lower accuracy than")
            text = (f"{where} {numbers}: with one seed per hand-picked network there is no interval; by that run "
                    f"alone it reached {word} the best with {fewer(r.shrunk_params, best.params)} it")
        else:
            lo, hi = b - printed(best["ci"]), b + printed(best["ci"])
            place = "within" if lo <= a <= hi else ("below" if a < lo else "above")
            text = (f"{where} {numbers}: {place} the {CI} of the best, with {fewer(r.shrunk_params, best.params)} "
                    f"it")
        better = dominated_by(r.shrunk_params, r.test, grid)
        text += (f"; {words(tt(x) for x in better)} {'is' if len(better) == 1 else 'are'} both at most as large and at "
                 f"least as accurate by the means" if better else
                 "; no hand-picked network is both at most as large and at least as accurate by the means")
        parts.append(text + ".")
    if not parts:
        return "No learned network of this run can be held against the grid search."
    return " ".join(parts)


def cost_sentence(lcells: pd.DataFrame, scells: pd.DataFrame):
    """Per unit: the whole grid search (every train cell of the kernel study) against one run of each learned arch,
    in wall-clock seconds of the cells. Returns the sentence and {(unit, arch): (whole ratio, per-seed ratio)}."""
    parts, ratios = [], {}
    for unit, g in lcells.groupby("unit", sort=False):
        grid = scells[scells["unit"] == unit].dropna(subset=["wall"]) if len(scells) else scells
        label = escape(g["label"].iloc[0])
        runs = []
        for arch, a in g.dropna(subset=["wall"]).groupby("arch", sort=False):
            runs.append((arch, a["wall"].mean(), int(a["epochs"].max()) or a["planned_epochs"].max(), len(a)))
        if not runs:
            parts.append(f"In {label} no cell of the {tt(LEARNED)} study recorded its wall-clock time.")
            continue
        if grid.empty:
            parts.append(f"In {label} the {tt(SWEEP)} study recorded no training time to compare with.")
            continue
        total, seeds = grid["wall"].sum(), grid["seed"].nunique()
        per_seed = total / seeds
        epochs = words(f"{e:g}" for e in sorted(grid["planned_epochs"].dropna().unique()))
        clauses = []
        for arch, wall, n_epochs, n in runs:
            whole, one = total / wall, per_seed / wall
            ratios[(unit, arch)] = (whole, one)
            mean = f" (mean of {n} runs)" if n > 1 else ""
            clauses.append(f"one run of {tt(arch)} took {seconds_text(wall)}{mean}, so the whole grid took "
                           f"{ratio(whole)}$\\times$ and one seed of it {ratio(one)}$\\times$ as long as that run: "
                           f"{cost_word(whole, one)}")
        learned_epochs = words(f"{e:g}" for e in sorted({n for _, _, n, _ in runs}))
        parts.append(f"In {label} the grid search ({count_words(len(grid), 'training cell')}: "
                     f"{count_words(grid['arch'].nunique(), 'architecture')}, {count_words(seeds, 'seed')}, "
                     f"{epochs} epochs each) took {seconds_text(total)} of wall-clock time, {seconds_text(per_seed)} "
                     f"per seed. A learned run trains for {learned_epochs} epochs and then crops, prunes, checks and "
                     f"times both networks; " + "; ".join(clauses) + ".")
    return " ".join(parts) or f"No cell of the {tt(LEARNED)} study recorded its time.", ratios


def cost_word(whole: float, one: float) -> str:
    """What the two printed ratios (whole grid / learned run, one seed of the grid / learned run) say."""
    whole, one = float(ratio(whole)), float(ratio(one))
    if one > 1:
        return "the learned run cost less than even one seed of the grid"
    if whole < 1:
        return "the learned run cost more than the whole grid"
    if whole == 1:
        return "the learned run cost as much as the whole grid"
    return "the learned run cost less than the whole grid" + (
        " and as much as one seed of it" if one == 1 else " but more than one seed of it")


# ---- tables ---------------------------------------------------------------------------------------

FAILED = r"\emph{failed}"
STAR = r"$^\star$"


def sweep_table(sweep: pd.DataFrame, records: list[dict]) -> str:
    caption = ("The grid search of the kernel study: test accuracy after the last epoch in percent, "
               f"{interval_words(sweep['seeds']) if len(sweep) else 'no seeds'}; parameters and forward MFLOPs per "
               "example of the trained network")
    speed = [r for r in records if r["cell"]["study"] == SWEEP and r["cell"]["task"] == "speed"]
    if speed:
        c = speed[0]["cell"]
        caption += (f"; forward and backward time of a training step in ms, median (interquartile range) over the "
                    f"repeats of the speed cells (batches of {c.get('batch_size')} synthetic "
                    f"{c['arch'].get('in_channels')}-channel images of {c.get('image_size')}$\\times${c.get('image_size')}"
                    f" pixels)")
    caption += ". Matched: how an architecture compares with the reference, read from its widths and parameters."
    if sweep.empty:
        return placeholder(caption, "tab:learned-sweep", "This run has no training cells of the kernel study.")
    rows = []
    for r in sweep.itertuples():
        test = (FAILED if r.seeds == 0 else pm(r.mean, r.ci) + (STAR if r.front else ""))
        seeds = f"{r.seeds}" + (f" (+{r.failed} failed)" if r.failed else "")
        timing = {}
        for phase in ("forward", "backward"):
            value, iqr = getattr(r, phase), getattr(r, f"{phase}_iqr")
            timing[phase] = ms(value, iqr) if pd.notna(value) else (FAILED if r.speed_ok is False else "--")
        rows.append({"Architecture": tt(r.arch), "Blocks": escape(r.description), "Matched": escape(r.matching),
                     "Seeds": seeds, "Test (%)": test, "Params": thousands(r.params) if pd.notna(r.params) else "--",
                     "MFLOPs": sig3(r.flops / 1e6) if pd.notna(r.flops) else "--", "Forward": timing["forward"],
                     "Backward": timing["backward"]})
    table = pd.DataFrame(rows)
    note = (f"{STAR}\\,On the Pareto front of mean test accuracy against parameters in its setup. Matched: equal "
            f"params means other widths and parameters within {EQUAL_PARAMS * 100:.0f}\\,\\% of the reference's.")
    return booktabs(table, caption, "tab:learned-sweep", "lllrrrrrr",
                    raw=("Architecture", "Blocks", "Matched", "Test (%)", "Forward", "Backward"), size=r"\scriptsize",
                    groups=sweep["label"].reset_index(drop=True), note=note, colsep="2pt")


def shrunk_table(lstats: pd.DataFrame, lcells: pd.DataFrame) -> str:
    caption = ("The learned networks after crop and prune: kernel size and maps per block (kept of initial), test "
               "accuracy in percent of the trained (masked or gated) network and of the shrunk plain one, their "
               "parameters, the time of one training step of each at the training input in ms, median (interquartile "
               "range), and the largest absolute difference between their logits over the test set (logit diff.). "
               "A cell that failed shows \\emph{failed}.")
    if lcells.empty:
        return placeholder(caption, "tab:learned-shrunk", "This run has no training cells of the learned study.")
    rows = []
    for r in lstats.itertuples():
        if r.seeds == 0:
            row = {c: FAILED for c in ["Kernels", "Maps", "Trained", "Shrunk", "Params", "Step", "Step shrunk", "Diff"]}
        else:
            maps = ", ".join(f"{m:.0f}/{i}" if r.seeds == 1 else f"{m:.1f}/{i}" for m, i in zip(r.maps_mean, r.maps))
            kernels = ", ".join(f"{k}/{i}" for k, i in zip(r.kept_kernels, r.kernels))
            if r.kernels_agree < r.seeds:
                kernels += f" ({r.kernels_agree} of {r.seeds})"
            row = {"Kernels": kernels, "Maps": maps, "Trained": pm(r.trained, r.trained_ci),
                   "Shrunk": pm(r.test, r.test_ci),
                   "Params": f"{thousands(r.params_initial)} $\\to$ {thousands(r.shrunk_params)}",
                   "Step": ms(r.step_learned, r.step_learned_iqr) if pd.notna(r.step_learned) else "--",
                   "Step shrunk": ms(r.step_shrunk, r.step_shrunk_iqr) if pd.notna(r.step_shrunk) else "--",
                   "Diff": sci(r.max_diff)}
        seeds = f"{r.seeds}" + (f" (+{r.failed} failed)" if r.failed else "")
        rows.append({"Architecture": tt(r.arch), "Seeds": seeds, **row})
    table = pd.DataFrame(rows)
    table.columns = pd.MultiIndex.from_tuples([("", "Architecture"), ("", "Seeds"), ("", "Kernels"), ("", "Maps"),
                                               ("Test (%)", "trained"), ("Test (%)", "shrunk"), ("", "Params"),
                                               ("Step (ms)", "trained"), ("Step (ms)", "shrunk"),
                                               ("", "Logit diff.")])
    raw = tuple(table.columns)
    return booktabs(table, caption, "tab:learned-shrunk", "llllrrrrrr", raw=raw, size=r"\scriptsize",
                    groups=lstats["label"].reset_index(drop=True), colsep="2pt")


# ---- figures --------------------------------------------------------------------------------------

LEARNED_MARKERS = ["*", "P", "X", "D"]


def thousands_axis(ax) -> None:
    """A log x axis of parameter counts labelled 20k, 50k, 100k rather than in powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1e3:g}k" if x >= 1e3 else f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def pareto_figure(sweep: pd.DataFrame, lstats: pd.DataFrame, lcells: pd.DataFrame, path: Path) -> Path:
    """Test accuracy against parameters, one panel per unit: the hand-picked networks (mean and t interval, cut at 0
    and 100 %), their Pareto front as a staircase, and each seed's shrunk learned network with a marker of its own."""
    done = sweep[sweep["seeds"] > 0] if len(sweep) else sweep
    learned_done = lstats[lstats["seeds"] > 0] if len(lstats) else lstats
    if done.empty and learned_done.empty:
        return blank_figure(path, "No finished training cell of the kernel or the learned study in this run.")
    labels = list(dict.fromkeys(list(sweep.get("label", [])) + list(lcells.get("label", []))))
    fig, axes = plt.subplots(1, len(labels), figsize=(3.4 * len(labels) + 0.4, 3.4), squeeze=False, sharey=True)
    archs = list(dict.fromkeys(lcells["arch"])) if len(lcells) else []
    markers = dict(zip(archs, LEARNED_MARKERS * 4))
    colors = dict(zip(archs, ["C3", "C2", "C4", "C1"] * 4))
    params = list(done["params"].dropna()) if len(done) else []
    params += list(lcells["shrunk_params"].dropna()) if len(lcells) else []
    right = max(params) * 1.3 if params else None
    accuracies = []
    for ax, label in zip(axes[0], labels):
        g = done[done["label"] == label].sort_values("params") if len(done) else done
        if len(g):
            mean, ci = 100 * g["mean"], 100 * g["ci"].fillna(0)
            ax.errorbar(g["params"], mean, yerr=[np.minimum(ci, mean), np.minimum(ci, 100 - mean)], fmt="o",
                        color="C0", ms=5, elinewidth=0.8, capsize=2, label=f"hand-picked (mean, {LEVEL * 100:.0f}% CI)")
            accuracies += list(mean)
            front = g[g["front"]].sort_values("params")
            ax.step([*front["params"], right], [*(100 * front["mean"]), 100 * front["mean"].iloc[-1]], where="post",
                    color="0.4", linewidth=1, linestyle="--", label="Pareto front of the hand-picked")
            for r in g.itertuples():
                ax.annotate(r.arch, (r.params, 100 * r.mean), xytext=(4, -9), textcoords="offset points",
                            fontsize=6.5, color="0.25")
        failed = []
        for arch in archs:
            rows = lcells[(lcells["label"] == label) & (lcells["arch"] == arch)]
            ok = rows[rows["status"] == "ok"]
            if len(ok):
                ax.scatter(ok["shrunk_params"], 100 * ok["test"], marker=markers[arch], s=90, color=colors[arch],
                           edgecolor="black", linewidth=0.5, zorder=5, label=f"{arch}, shrunk after training")
                accuracies += list(100 * ok["test"])
            failed += [arch] * int((rows["status"] == "failed").any())
        if failed:
            ax.text(0.02, 0.02, "failed: " + ", ".join(failed), transform=ax.transAxes, fontsize=7, color="C3")
        thousands_axis(ax)
        ax.set_title(label)
        ax.set_xlabel("parameters")
    axes[0][0].set_ylabel("test accuracy (%)")
    if accuracies:  # the means and the learned points set the range; a wide interval runs off it
        lo, hi = min(accuracies), max(accuracies)
        pad = max(1.0, 0.15 * (hi - lo))
        axes[0][0].set_ylim(max(0, lo - pad), min(100, hi) + pad)
    handles = {}
    for ax in axes[0]:
        for h, name in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(name, h)
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=min(2, len(handles)), frameon=False,
               fontsize="small")
    fig.tight_layout(rect=(0, 0.16, 1, 1))
    fig.savefig(path)
    plt.close(fig)
    return path


def radius_bands(ax, max_kernel: int, lo: float, hi: float) -> None:
    """Dotted lines where the crop size changes (z = d - ramp), each band labelled on the right with the size that a
    radius in it crops to; the axis spans lo to hi."""
    edges = [d - RAMP for d in range(1, (max_kernel - 1) // 2 + 1)]
    lo, hi = min(lo, edges[0] - 0.5 if edges else lo), max(hi, edges[-1] + 0.5 if edges else hi)
    ax.set_ylim(lo, hi)
    distance = method.distance_grid(max_kernel)
    bounds = [lo, *[e for e in edges if lo < e < hi], hi]
    for a, b in zip(bounds[:-1], bounds[1:]):
        z = (a + b) / 2
        k = method.effective_size(method.ramp_mask(distance, z, RAMP), THRESHOLD)
        if b < hi:
            ax.axhline(b, color="0.55", linestyle=":", linewidth=0.8)
        ax.text(1.01, z, f"crops to\n{k}×{k}", transform=ax.get_yaxis_transform(), va="center", fontsize=6.5,
                color="0.35")


def radius_figure(lcells: pd.DataFrame, traj: pd.DataFrame, path: Path) -> Path:
    """The mean learned radius of each masked layer over the epochs, one line per layer and setup (and seed)."""
    rad = traj[traj["quantity"] == "radius"] if len(traj) else traj
    if rad.empty:
        failed = lcells[(lcells["status"] == "failed") & lcells["size"]] if len(lcells) else lcells
        return blank_figure(path, "No network of this run learned its kernel size" +
                            (f" (failed: {', '.join(failed['arch'].unique())})." if len(failed) else "."))
    rad = rad.assign(Layer=[f"block {b + 1}" for b in rad["block"]], Setup=rad["label"])
    fig, ax = plt.subplots(figsize=(5.6, 3.2))
    styles = ["-", "--", ":", "-."]
    colors = {layer: f"C{i}" for i, layer in enumerate(sorted(rad["Layer"].unique()))}
    for i, setup in enumerate(dict.fromkeys(rad["Setup"])):
        for (layer, arch, seed), g in rad[rad["Setup"] == setup].groupby(["Layer", "arch", "seed"]):
            g = g.sort_values("epoch")
            ax.plot(g["epoch"], g["value"], linestyle=styles[i % len(styles)], color=colors[layer], marker=".",
                    markersize=3, linewidth=1, label=f"{layer}, {setup}")
    kmax = max(k for r in lcells[lcells["size"]].itertuples() for k in r.kernels)
    radius_bands(ax, kmax, rad["value"].min() - 0.15, rad["value"].max() + 0.15)
    ax.set_xlabel("epoch (0 = initialisation)")
    ax.set_ylabel("mean learned radius z (pixels)")
    handles = dict(zip(*reversed(ax.get_legend_handles_labels())))
    ax.legend(handles.values(), handles.keys(), fontsize="small", frameon=True, loc="lower left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def maps_figure(lcells: pd.DataFrame, traj: pd.DataFrame, path: Path) -> Path:
    """Open maps (test-time gate > 0) of each gated layer over the epochs, and the initial maps as a grey line."""
    gates = traj[traj["quantity"] == "open_maps"] if len(traj) else traj
    if gates.empty:
        failed = lcells[(lcells["status"] == "failed") & lcells["gates"]] if len(lcells) else lcells
        return blank_figure(path, "No network of this run learned its number of filters" +
                            (f" (failed: {', '.join(failed['arch'].unique())})." if len(failed) else "."))
    gates = gates.assign(Layer=[f"block {b + 1}" for b in gates["block"]], Setup=gates["label"])
    fig, ax = plt.subplots(figsize=(5.6, 3.2))
    styles = ["-", "--", ":", "-."]
    colors = {layer: f"C{i}" for i, layer in enumerate(sorted(gates["Layer"].unique()))}
    initial = {}
    for r in lcells[lcells["gates"]].itertuples():
        for i, (m, b) in enumerate(zip(r.maps, r.blocks)):
            if b.get("gates"):
                initial[f"block {i + 1}"] = m
    for layer, m in initial.items():
        ax.axhline(m, color=colors.get(layer, "0.5"), linewidth=0.6, alpha=0.5)
    for i, setup in enumerate(dict.fromkeys(gates["Setup"])):
        for (layer, arch, seed), g in gates[gates["Setup"] == setup].groupby(["Layer", "arch", "seed"]):
            g = g.sort_values("epoch")
            ax.plot(g["epoch"], g["value"], linestyle=styles[i % len(styles)], color=colors[layer], marker=".",
                    markersize=3, linewidth=1, label=f"{layer}, {setup}", drawstyle="steps-post")
    ax.set_ylim(0, max(initial.values(), default=gates["value"].max()) * 1.08)
    ax.set_xlabel("epoch (0 = initialisation)")
    ax.set_ylabel("open maps (test-time gate > 0)")
    handles = dict(zip(*reversed(ax.get_legend_handles_labels())))
    ax.legend(handles.values(), handles.keys(), fontsize="small", frameon=False, loc="lower left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# ---- entry point ----------------------------------------------------------------------------------

def analyse_learned(records: list[dict], out_dir: Path) -> dict[str, str]:
    """Figures into out_dir/figures/, tables into out_dir/tables/; returns macro key -> LaTeX value (keys 'learned/...'
    and 'kernelsweep/...')."""
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    sweep, scells = sweep_stats(records), sweep_cells(records)
    lcells = learned_cells(records)
    lstats, traj = learned_stats(lcells), trajectories(lcells)
    (out / "tables" / "learned_sweep.tex").write_text(sweep_table(sweep, records))
    (out / "tables" / "learned_shrunk.tex").write_text(shrunk_table(lstats, lcells))
    pareto_figure(sweep, lstats, lcells, out / "figures" / "learned_pareto.pdf")
    radius_figure(lcells, traj, out / "figures" / "learned_radius.pdf")
    maps_figure(lcells, traj, out / "figures" / "learned_maps.pdf")
    values = {**sweep_values(sweep, scells), **learned_values(lstats, lcells, traj, sweep, scells)}
    missing = [k for k in FIXED if k not in values]
    assert not missing, f"analyse_learned left out {missing}"
    return values

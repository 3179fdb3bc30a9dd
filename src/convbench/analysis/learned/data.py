"""The run's tidy table as the learned study reads it: one row per cell of the grid search (the kernel study's train
cells) and of the learned study, per-architecture statistics over seeds, and the learned state per epoch.

A unit is a setup (framework-engine), with the device appended where the two studies ran on more than one. Which
grid architectures match the reference (one 3x3 convolution per block) at equal width or about equal parameters is
read from the widths, not from the names.
"""
from __future__ import annotations

import inspect
import math
from collections import Counter

import numpy as np
import pandas as pd

from convbench import learned as method
from convbench.analysis.formatting import count_words, last_line, printed, setup_label, setup_rank
from convbench.analysis.query import REPEAT
from convbench.analysis.stats import pareto_front, t_interval
from convbench.analysis.study import Run

SWEEP, LEARNED = "kernel", "learned"
RAMP = inspect.signature(method.ramp_mask).parameters["ramp"].default
THRESHOLD = inspect.signature(method.shrink).parameters["threshold"].default
EQUAL_PARAMS = 0.25  # a narrower or wider arch within this relative distance of the reference's parameters matches them
MATCH_RANK = {"reference": 0, "equal width": 0, "equal params": 1, "other": 2}

CELL_COLUMNS = ["cell_id", "study", "task", "framework", "engine", "device", "devices", "arch", "description", "seed",
                "train_fraction", "params", "flops", "dataset", "train_size", "test_size", "image_size",
                "in_channels", "batch_size", "optimizer", "lr", "momentum", "planned_epochs", "init_radius",
                "radius_penalty", "init_log_alpha", "l0_penalty", "radius_lr", "gate_lr", "role", "field", "planted_scale",
                "planted_scales"]


def blocks(text) -> tuple:
    """'3, 3' -> (3, 3); '-' (a block without the setting) -> None."""
    if not isinstance(text, str):
        return ()
    return tuple(None if x.strip() == "-" else float(x) for x in text.split(","))


def ints(text) -> tuple:
    return tuple(int(x) for x in blocks(text))


def namer(df: pd.DataFrame):
    """(unit, label) of a cell: framework-engine, with the device where the two studies ran on more than one."""
    rows = df[df["study"].isin([SWEEP, LEARNED])]
    many = len(rows[["device", "devices"]].drop_duplicates()) > 1

    def name(cell) -> tuple[str, str]:
        unit, label = f"{cell['framework']}-{cell['engine']}", setup_label(cell["framework"], cell["engine"])
        if many:
            n = int(cell["devices"])
            unit, label = f"{unit}-{cell['device']}{n}", f"{label} ({cell['device']}, {count_words(n, 'device')})"
        return unit, label
    return name


def in_unit_order(cells: pd.DataFrame) -> pd.DataFrame:
    """Frameworks and engines in the tables' order (PyTorch first), the table's order within."""
    order = sorted(range(len(cells)), key=lambda i: (setup_rank(cells["unit"].iloc[i]), cells["unit"].iloc[i]))
    return cells.iloc[order].reset_index(drop=True)


def cells(run: Run, study: str, task: str = "train") -> pd.DataFrame:
    """One row per cell of a study and task: its descriptors, metrics of phase final/cell as columns (test_accuracy,
    wall_time, epochs, ...), unit and label, status ('failed' also for an ok train cell without epochs)."""
    df = run.tidy
    if df.empty or "study" not in df:
        return pd.DataFrame()
    rows = df[(df["study"] == study) & (df["task"] == task)]
    if rows.empty:
        return pd.DataFrame()
    present = [c for c in CELL_COLUMNS if c in rows]
    out = rows.groupby("cell_id", sort=False)[present[1:]].first().reset_index()
    out = out.reindex(columns=CELL_COLUMNS)
    first = rows.groupby("cell_id", sort=False)[["status", "error"]].first()
    scalar = rows[rows["metric"].notna() & rows["block"].isna() & rows["epoch"].isna()]
    wide = scalar.pivot_table(index="cell_id", columns=["metric", "phase"], values="value", aggfunc="first")
    wide.columns = [f"{m}:{p}" for m, p in wide.columns]
    out = out.join(first, on="cell_id").join(wide, on="cell_id")
    for c in rows.columns:  # per-block shape, as tuples
        if c in ("kernels", "depths", "widths", "maps"):
            out[c] = rows.groupby("cell_id", sort=False)[c].first().reindex(out["cell_id"]).map(ints).to_numpy()
    name = namer(df)
    out["unit"], out["label"] = zip(*(name(r) for _, r in out.iterrows()))
    has_epochs = out["epochs:final"].notna() if "epochs:final" in out else pd.Series(False, index=out.index)
    usable = (out["status"] == "ok") & (has_epochs | (task != "train"))
    out["error"] = np.where(usable, None, np.where(out["status"] != "ok", out["error"].map(
        lambda e: last_line(e) or "no error text"), "the record holds no epochs"))
    out["status"] = np.where(usable, "ok", "failed")
    get = lambda key: out[key] if key in out else pd.Series(math.nan, index=out.index)  # noqa: E731
    out["test"], out["wall"], out["epochs"] = get("test_accuracy:final"), get("wall_time:cell"), get("epochs:final")
    out["converged"] = get("converged:final")
    return in_unit_order(out)


def learns(cells: pd.DataFrame) -> pd.Series:
    """Whether each cell's network learns its kernel size or its filters (a masked or a gated block)."""
    def any_block(column):
        return cells[column].map(lambda text: any(v is not None for v in blocks(text)))
    return any_block("init_radius") | any_block("init_log_alpha")


def task(cells: pd.DataFrame, sizes: bool = True) -> pd.Series:
    """What a cell's accuracy was measured on: its data set and planted scales, and (sizes) its training and test
    sizes, which a failed cell may not have recorded. Accuracies on different tasks are not set beside each other."""
    scales = cells["planted_scales"].astype(object).fillna("").astype(str) if "planted_scales" in cells else ""
    key = cells["dataset"].astype(object).fillna("").astype(str) + "/" + scales
    return key + "/" + cells["train_size"].astype(str) + "/" + cells["test_size"].astype(str) if sizes else key


def sweep_cells(run: Run) -> pd.DataFrame:
    """One row per replicate train cell of the grid at its largest training fraction (a cross-framework repeat is no
    seed of the grid): the kernel study's, and the learned study's hand-picked networks (e.g. the width grid). Where
    the learned study learned a size or filters, the grid is what trained on the same task; otherwise a grid that spans
    several data sets is one unit per data set (its label names it)."""
    learned = cells(run, LEARNED)
    plain = learned[~learns(learned)] if len(learned) else learned
    out = pd.concat([c for c in (cells(run, SWEEP), plain) if len(c)], ignore_index=True) \
        if len(plain) else cells(run, SWEEP)
    out = out[out["role"] != REPEAT] if len(out) else out
    if out.empty:
        return out
    gated = learned[learns(learned)] if len(learned) else learned
    if len(gated):
        failed = (out["status"] == "failed") & task(out, sizes=False).isin(set(task(gated, sizes=False)))
        out = out[task(out).isin(set(task(gated))) | failed]
    out = out[out["train_fraction"] == out.groupby(task(out, sizes=False))["train_fraction"].transform("max")]
    if task(out[out["dataset"].notna()], sizes=False).nunique() > 1:  # a failed cell may not name its data set
        named = out["dataset"].notna()
        out = out.assign(unit=out["unit"].where(~named, out["unit"] + "-" + out["dataset"]),
                         label=out["label"].where(~named, out["label"] + ", " + out["dataset"]))
    return in_unit_order(out.reset_index(drop=True))


def speed_summary(run: Run) -> pd.DataFrame:
    """Per unit and arch of the kernel study's speed cells: forward and backward median and IQR (median over seeds),
    ok: whether any cell finished."""
    columns = ["unit", "arch", "speed_ok", "forward", "forward_iqr", "backward", "backward_iqr"]
    df = run.tidy
    rows = df[(df["study"] == SWEEP) & (df["task"] == "speed")] if len(df) else df
    if rows.empty:
        return pd.DataFrame(columns=columns)
    name = namer(df)
    per_cell = rows.groupby("cell_id", sort=False).first()
    per_cell = per_cell.assign(unit=[name(r)[0] for _, r in per_cell.iterrows()], ok=per_cell["status"] == "ok")
    out = per_cell.groupby(["unit", "arch"], sort=False)["ok"].any().rename("speed_ok").reset_index()
    for phase in ("forward", "backward"):
        times = rows[(rows["metric"] == "time") & (rows["phase"] == phase)]
        times = times.assign(unit=per_cell.loc[times["cell_id"], "unit"].to_numpy())
        agg = times.groupby(["unit", "arch"])[["value", "iqr"]].median().rename(
            columns={"value": phase, "iqr": f"{phase}_iqr"})
        out = out.join(agg, on=["unit", "arch"])
    return out.reindex(columns=columns)


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


SWEEP_COLUMNS = ["unit", "label", "framework", "engine", "arch", "description", "kernels", "depths", "widths", "maps",
                 "params", "flops", "mean", "ci", "seeds", "failed", "cells", "errors", "matching", "front",
                 "speed_ok", "forward", "forward_iqr", "backward", "backward_iqr", "rf"]


def sweep_stats(run: Run, scells: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per unit and arch of the grid: test accuracy mean, CI half-width and seeds; failed cells; params, FLOPs;
    matching; whether on the unit's Pareto front (mean accuracy as printed against parameters); forward and backward
    time of the speed cells."""
    scells = sweep_cells(run) if scells is None else scells
    if scells.empty:
        return pd.DataFrame(columns=SWEEP_COLUMNS)
    rows = []
    for (unit, arch), g in scells.groupby(["unit", "arch"], sort=False):
        mean, ci, n = t_interval(g.loc[g["status"] == "ok", "test"])
        first = g.iloc[0]
        params, flops = g["params"].dropna(), g["flops"].dropna()
        rows.append({**{c: first[c] for c in ["unit", "label", "framework", "engine", "arch", "description",
                                                "kernels", "depths", "widths", "maps"]},
                     "params": params.iloc[0] if len(params) else math.nan,
                     "flops": flops.iloc[0] if len(flops) else math.nan, "mean": mean, "ci": ci, "seeds": n,
                     "failed": int((g["status"] == "failed").sum()), "cells": len(g),
                     "errors": sorted({e for e in g["error"] if isinstance(e, str) and e})})
    out = pd.DataFrame(rows)
    out["matching"] = out["arch"].map(matching(scells))
    out["rf"] = [d[0] * (k[0] - 1) + 1 for k, d in zip(out["kernels"], out["depths"])]
    out["front"] = False
    for _, g in out.groupby("unit"):
        out.loc[g.index, "front"] = pareto_front(g["params"], [printed(m) if pd.notna(m) else m for m in g["mean"]])
    out = out.merge(speed_summary(run), on=["unit", "arch"], how="left")
    out = out.assign(_u=out["unit"].map(setup_rank), _m=out["matching"].map(MATCH_RANK))
    out = out.sort_values(["_u", "unit", "_m", "rf", "depths", "arch"], kind="stable")
    return out.drop(columns=["_u", "_m"]).reset_index(drop=True)[SWEEP_COLUMNS]


def per_block_rows(run: Run, metric: str, study: str = LEARNED) -> dict[str, tuple]:
    """cell_id -> the values of a per-block metric (phase shrunk), in block order."""
    df = run.tidy
    rows = df[(df["study"] == study) & (df["metric"] == metric)].sort_values("block", kind="stable")
    return {cell: tuple(int(v) for v in g["value"]) for cell, g in rows.groupby("cell_id", sort=False)}


def learned_cells(run: Run) -> pd.DataFrame:
    """One row per train cell of the learned study that learns its size or filters, with what crop and prune kept (its
    hand-picked networks belong to the grid: sweep_cells)."""
    out = cells(run, LEARNED)
    out = out[learns(out)].reset_index(drop=True) if len(out) else out
    if out.empty:
        return out
    get = lambda key: out[key] if key in out else pd.Series(math.nan, index=out.index)  # noqa: E731
    radius, alpha = out["init_radius"].map(blocks), out["init_log_alpha"].map(blocks)
    kept_k, kept_m = per_block_rows(run, "kept_kernel"), per_block_rows(run, "kept_maps")
    widths = per_block_rows(run, "shrunk_width")
    out = out.assign(
        size=[any(v is not None for v in r) for r in radius], gates=[any(v is not None for v in a) for a in alpha],
        init_radius=radius, radius_penalty=out["radius_penalty"].map(blocks), init_log_alpha=alpha,
        l0_penalty=out["l0_penalty"].map(blocks),
        kept_kernels=out["cell_id"].map(kept_k), kept_maps=out["cell_id"].map(kept_m),
        trained_test=out["test"], test=get("shrunk_test_accuracy:shrunk"),
        shrunk_params=get("shrunk_params:shrunk"), shrunk_flops=get("shrunk_flops:shrunk"),
        max_diff=get("max_logit_difference:shrunk"), shrunk_field=get("shrunk_field:shrunk"),
        shrunk_shape=[tuple(zip(kept_k[c], widths[c], d)) if c in kept_k and c in widths else None
                      for c, d in zip(out["cell_id"], out["depths"])])
    step = run.tidy[(run.tidy["study"] == LEARNED) & (run.tidy["metric"] == "step_time")].set_index(
        ["cell_id", "phase"])
    for net in ("learned", "shrunk"):
        for column, suffix in (("value", ""), ("iqr", "_iqr")):
            out[f"step_{net}{suffix}"] = [step[column].get((c, net), math.nan) for c in out["cell_id"]]
    no_shrunk = (out["status"] == "ok") & out["kept_kernels"].isna()
    out.loc[no_shrunk, "error"] = "the record holds no shrunk network"
    out.loc[no_shrunk, "status"] = "failed"
    return out


def penalty_sweep(lcells: pd.DataFrame) -> pd.DataFrame:
    """One row per finished learned cell of one kind, in penalty order: kind ('size' or 'width'), unit, label, arch,
    seed, penalty (the blocks' largest), kept kernels and maps, the shrunk network's field and parameters, test
    accuracy before and after shrinking, whether training converged, and the planted scale (NaN on other data)."""
    columns = ["kind", "unit", "label", "arch", "seed", "penalty", "kept_kernels", "kept_maps", "maps", "shrunk_field",
               "field", "shrunk_params", "params", "trained_test", "test", "converged", "planted_scale"]
    ok = lcells[lcells["status"] == "ok"] if len(lcells) else lcells
    rows = []
    for kind, column, penalty in (("size", "size", "radius_penalty"), ("width", "gates", "l0_penalty")):
        for r in ok[ok[column]].itertuples() if len(ok) else ():
            rows.append({"kind": kind, "unit": r.unit, "label": r.label, "arch": r.arch, "seed": r.seed,
                         "penalty": max(v for v in getattr(r, penalty) if v is not None),
                         "kept_kernels": r.kept_kernels, "kept_maps": r.kept_maps, "maps": r.maps,
                         "shrunk_field": r.shrunk_field, "field": r.field, "shrunk_params": r.shrunk_params,
                         "params": r.params, "trained_test": r.trained_test, "test": r.test,
                         "converged": r.converged, "planted_scale": r.planted_scale})
    out = pd.DataFrame(rows, columns=columns)
    order = sorted(range(len(out)), key=lambda i: (out["kind"].iloc[i], setup_rank(out["unit"].iloc[i]),
                                                   out["penalty"].iloc[i], out["seed"].iloc[i]))
    return out.iloc[order].reset_index(drop=True)


def learned_stats(lcells: pd.DataFrame) -> pd.DataFrame:
    """Per unit and learned arch, over its ok seeds."""
    rows = []
    if lcells.empty:
        return pd.DataFrame(rows)
    for (unit, arch), g in lcells.groupby(["unit", "arch"], sort=False):
        ok = g[g["status"] == "ok"]
        first = g.iloc[0]
        test, test_ci, n = t_interval(ok["test"])
        trained, trained_ci, _ = t_interval(ok["trained_test"])
        kernels = Counter(ok["kept_kernels"])
        mode, mode_n = kernels.most_common(1)[0] if kernels else (None, 0)
        maps = np.array(list(ok["kept_maps"]), float) if n else np.zeros((0, len(first["maps"])))
        median = lambda c: ok[c].median() if n else math.nan  # noqa: E731
        rows.append({
            **{c: first[c] for c in ["unit", "label", "framework", "engine", "arch", "description", "size", "gates",
                                     "kernels", "maps", "widths", "init_radius", "radius_penalty", "init_log_alpha",
                                     "l0_penalty", "radius_lr", "gate_lr", "optimizer", "lr", "planned_epochs"]},
            "params_initial": first["params"], "flops_initial": first["flops"],
            "seeds": n, "failed": int((g["status"] == "failed").sum()),
            "errors": sorted({e for e in g["error"] if isinstance(e, str) and e}),
            "test": test, "test_ci": test_ci, "trained": trained, "trained_ci": trained_ci,
            "seed_tests": dict(zip(ok["seed"], ok["test"])),
            "kept_kernels": mode, "kernels_agree": mode_n, "all_kernels": kernels,
            "maps_mean": maps.mean(axis=0) if n else None, "maps_min": maps.min(axis=0) if n else None,
            "maps_max": maps.max(axis=0) if n else None,
            "shrunk_params": median("shrunk_params"), "shrunk_flops": median("shrunk_flops"),
            "shrunk_shape": Counter(ok["shrunk_shape"]).most_common(1)[0][0] if n else None,
            "max_diff": ok["max_diff"].max() if n else math.nan,
            "step_learned": median("step_learned"), "step_learned_iqr": median("step_learned_iqr"),
            "step_shrunk": median("step_shrunk"), "step_shrunk_iqr": median("step_shrunk_iqr"),
            "wall": g["wall"].dropna().mean() if g["wall"].notna().any() else math.nan,
            "epochs": int(ok["epochs"].max()) if n else 0,
        })
    out = pd.DataFrame(rows)
    out = out.assign(_u=out["unit"].map(setup_rank), _k=[(not s, a) for s, a in zip(out["size"], out["arch"])])
    return out.sort_values(["_u", "unit", "_k"]).drop(columns=["_u", "_k"]).reset_index(drop=True)


def trajectories(run: Run, lcells: pd.DataFrame) -> pd.DataFrame:
    """Long table: unit, label, arch, seed, epoch (0 = initialisation), block, quantity (radius or open_maps), value;
    the ok cells only."""
    columns = ["unit", "label", "arch", "seed", "epoch", "block", "quantity", "value"]
    if lcells.empty:
        return pd.DataFrame(columns=columns)
    df = run.tidy
    rows = df[(df["study"] == LEARNED) & df["metric"].isin(["radius", "open_maps"])]
    ok = lcells[lcells["status"] == "ok"].set_index("cell_id")
    rows = rows[rows["cell_id"].isin(ok.index)]
    cell = ok.loc[rows["cell_id"]]
    out = rows.assign(unit=cell["unit"].to_numpy(), label=cell["label"].to_numpy(),
                      quantity=rows["metric"], epoch=rows["epoch"].astype(int), block=rows["block"].astype(int))
    return out[columns].reset_index(drop=True)

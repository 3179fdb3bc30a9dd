"""The learned size's tracking experiment (config study 'tracking'): one network that learns its kernel sizes, trained
on the planted task at several scales, several seeds each. Does the learned field find the scale?

The staircase it is judged against: at each scale, the smallest field of the network's shape (every masked block at
any odd kernel up to its largest) whose last convolution sees both marks wherever they fall (convbench.spec.
covering_field; the tidy table's covering_field). A run fails outright when it keeps the largest kernel of a block (a
solution on the boundary) or ends with a field below the covering one at chance accuracy; otherwise it tracks the
scale when its shrunk field lies within one kernel step of the covering one: a step of the last block's kernel (2
taps) widens the field by twice that block's input stride.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from convbench.analysis.formatting import FRAMEWORK_ORDER, count_words, framework_name, percent, words
from convbench.analysis.learned import data
from convbench.analysis.plotting import placeholder, plt, save
from convbench.analysis.study import Run

TRACKING = "tracking"  # the config study
KEY = "learned/tracking"  # its macros, written by the learned study
CHANCE_MARGIN = 0.1  # a shrunk network within this of chance accuracy (1 / classes) has lost the task
NEEDED = 4  # of every 5 seeds (issue 24's criterion): the learned field within one step of the covering one


def step(kernels: tuple) -> int:
    """The field's growth for one kernel step (2 taps) of the last block: 2 x its input stride (every earlier block
    pools by 2 in the networks this study trains)."""
    return 2 * 2 ** (len(kernels) - 1)


def runs(run: Run) -> pd.DataFrame:
    """One row per finished tracking cell: framework, unit, seed, scale, learned (shrunk) field, covering field, the
    largest field, kept kernels, largest kernels, test accuracy after shrinking, the epoch learning started, and
    the verdicts tracks, at_largest, lost."""
    cells = data.cells(run, TRACKING)
    columns = ["framework", "unit", "seed", "scale", "field", "covering", "largest", "kept", "kernels", "test",
               "started", "tracks", "at_largest", "lost"]
    if cells.empty:
        return pd.DataFrame(columns=columns)
    cells = cells[cells["status"] == "ok"]
    kept = data.per_block_rows(run, "kept_kernel", TRACKING)
    get = lambda key: cells[key] if key in cells else pd.Series(np.nan, index=cells.index)  # noqa: E731
    out = pd.DataFrame({
        "framework": cells["framework"], "unit": cells["unit"], "seed": cells["seed"].astype(int),
        "scale": cells["planted_scale"].astype(float), "field": get("shrunk_field:shrunk"),
        "covering": get("covering_field:shrunk"), "largest": cells["field"].astype(float),
        "kept": cells["cell_id"].map(kept), "kernels": cells["kernels"], "test": get("shrunk_test_accuracy:shrunk"),
        "started": get("learning_started_epoch:final")}).dropna(subset=["field", "covering", "kept"])
    tolerance = out["kernels"].map(step)
    chance = 1 / 2 + CHANCE_MARGIN  # the planted task has two classes
    out = out.assign(
        at_largest=[any(k >= m for k, m in zip(kept, top)) for kept, top in zip(out["kept"], out["kernels"])],
        lost=(out["field"] < out["covering"]) & (out["test"] < chance))
    out["tracks"] = ((out["field"] - out["covering"]).abs() <= tolerance) & ~out["lost"] & ~out["at_largest"]
    return out.reset_index(drop=True)[columns]


def staircase(run: Run, scales) -> pd.DataFrame:
    """The covering field at every integer scale from 3 to the largest run, from the tracking network's shape."""
    from convbench.spec import ArchSpec, covering_field
    rows = run.tidy[(run.tidy["study"] == TRACKING) & (run.tidy["metric"] == "covering_field")]
    if rows.empty:
        return pd.DataFrame(columns=["scale", "covering"])
    first = run.tidy[run.tidy["cell_id"] == rows["cell_id"].iloc[0]].iloc[0]
    spec = ArchSpec.from_dict("tracking", {"blocks": [
        {"width": 1, "kernel": int(k), "init_radius": 0.5} for k in str(first["kernels"]).split(",")]}, 1, 2)
    grid = range(3, int(max(scales)) + 3)
    return pd.DataFrame({"scale": list(grid), "covering": [covering_field(spec, s) for s in grid]})


def figure(run: Run, path: Path) -> Path:
    """The learned field against the planted scale: one point per seed and framework, the staircase of the smallest
    covering field, its one-step band, and the largest field the masks allow."""
    r = runs(run)
    if r.empty:
        return placeholder(path, "No tracking run finished in this run.")
    stairs = staircase(run, r["scale"])
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    tolerance = step(r["kernels"].iloc[0])
    ax.step(stairs["scale"], stairs["covering"], where="mid", color="0.2", linewidth=1.2,
            label="smallest covering field")
    ax.fill_between(stairs["scale"], stairs["covering"] - tolerance, stairs["covering"] + tolerance, step="mid",
                    color="0.85", label="one kernel step")
    ax.axhline(r["largest"].max(), color="C3", linestyle="--", linewidth=0.9, label="largest field (masks full)")
    for i, (framework, g) in enumerate(r.groupby("framework", sort=True)):
        colour = FRAMEWORK_ORDER.index(framework) if framework in FRAMEWORK_ORDER else i  # PyTorch blue, as elsewhere
        jitter = 0.08 * (g.groupby("scale").cumcount() - g.groupby("scale")["seed"].transform("count").sub(1) / 2)
        ax.plot(g["scale"] + jitter + 0.15 * i, g["field"], linestyle="none", marker="oX"[i % 2], markersize=4,
                color=f"C{colour}", alpha=0.8, label=f"learned ({framework_name(framework)}), one per seed")
    ax.set_xlabel("planted scale (px)")
    ax.set_ylabel("receptive field (px)")
    # below the axes: inside, the box covered the points and the dashed largest field
    ax.legend(fontsize=6.5, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    fig.tight_layout()
    return save(fig, path)


def misses(at_largest: int, lost: int) -> str:
    """The runs that missed the scale, without a count of zero: '2 ended at the largest kernel and 1 below the scale
    at chance', 'none ended at the largest kernel or below the scale at chance'."""
    parts = [f"{n} ended {where}" for where, n in (("at the largest kernel", at_largest),
                                                   ("below the scale at chance", lost)) if n]
    return words(parts) or "none ended at the largest kernel or below the scale at chance"


def values(run: Run) -> dict[str, str]:
    """Under learned/tracking/: ran, scales, seeds, and per scale s: s<s>/{covering,fields,tracked}; overall
    tracked, tracked-share, at-largest, lost, met, and repeats-agree (the other framework's repeats of a seed that kept
    the same kernels as the replicate framework's run of it) (met: every scale tracked in >= 4 of 5 of its seeds, none at the
    largest kernel or lost)."""
    r = runs(run)
    out = {f"{KEY}/{key}": "--" for key in ("scales", "seeds", "tracked", "tracked-share", "at-largest", "lost",
                                            "misses", "repeats-agree", "repeats-near", "lr", "radius-lr", "train-size")}
    cells = data.cells(run, TRACKING)
    for key, column, fmt in (("lr", "lr", "{:g}"), ("radius-lr", "radius_lr", "{:g}"),
                             ("train-size", "train_size", "{:,.0f}")):
        found = sorted(cells[column].dropna().unique()) if column in cells else []
        if found:  # the recipe the method states: the weights' and the radii's learning rates, the images drawn
            out[f"{KEY}/{key}"] = words(fmt.format(v) for v in found)
    out |= {f"{KEY}/ran": "1" if len(r) else "0", f"{KEY}/met": "0"}
    if r.empty:
        return out
    main = r[r["framework"] == r["framework"].iloc[0]]
    for scale, g in main.groupby("scale"):
        key = f"{KEY}/s{int(scale)}"
        out[f"{key}/covering"] = f"{int(g['covering'].iloc[0])}"
        out[f"{key}/fields"] = ", ".join(f"{int(f)}" for f in g.sort_values("seed")["field"])
        out[f"{key}/tracked"] = f"{int(g['tracks'].sum())} of {len(g)}"
    per_scale = main.groupby("scale")["tracks"].mean()
    # the other framework's repeats of a seed: the same kept kernels as the replicate framework's run of it?
    keyed = main.set_index(["scale", "seed"])["kept"]
    others = r[(r["framework"] != main["framework"].iloc[0])]
    repeats = [(k, kept) for k, kept in zip(zip(others["scale"], others["seed"]), others["kept"]) if k in keyed.index]
    out[f"{KEY}/repeats-agree"] = f"{sum(keyed[k] == kept for k, kept in repeats)} of {len(repeats)}"
    # the trajectory's tolerance: the repeat's learned field within one kernel step of the replicate's (the tracking
    # criterion's own), since float differences between frameworks can tip a radius across a crop boundary
    fields = main.set_index(["scale", "seed"])["field"]
    near = [abs(fields[k] - f) <= step(kernels) for k, f, kernels in
            zip(zip(others["scale"], others["seed"]), others["field"], others["kernels"]) if k in fields.index]
    out[f"{KEY}/repeats-near"] = f"{sum(near)} of {len(near)}"
    out |= {f"{KEY}/scales": words(f"{int(s)}" for s in sorted(main["scale"].unique())),
            f"{KEY}/seeds": count_words(main.groupby("scale").size().min(), "seed"),
            f"{KEY}/tracked": f"{int(main['tracks'].sum())} of {len(main)}",
            f"{KEY}/tracked-share": percent(main["tracks"].mean()),
            f"{KEY}/at-largest": f"{int(r['at_largest'].sum())}", f"{KEY}/lost": f"{int(r['lost'].sum())}",
            f"{KEY}/misses": misses(int(r["at_largest"].sum()), int(r["lost"].sum())),
            f"{KEY}/met": "1" if ((per_scale >= NEEDED / 5).all() and not r["at_largest"].any()
                                       and not r["lost"].any()) else "0"}
    return out

"""The learned study's numbers, short phrases and verdicts: the grid search's statistics, what was learned, the shrunk
networks against the grid's best, and what the grid search cost against one learned run.

Per unit and arch: learned/sweep/<unit>/<arch>/{test-accuracy,test-accuracy-ci,seeds,params} and
learned/<unit>/<arch>/{test-accuracy,trained-test-accuracy,train-accuracy,gap,params,kernels,maps,step-ratio,
cost-ratio,max-logit-difference}. The paper's text quotes keys of fixed names: the run's settings, flags, and the main
setup's results (the learned study's first setup in the tables' order) under learned/size/... and learned/width/...;
every setup's verdicts are in the appendix table. Every word is chosen from the numbers as printed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import pandas as pd

from convbench import learned as method
from convbench.analysis.formatting import (
    count_words,
    escape,
    flag,
    percent,
    pm,
    printed,
    ratio,
    sci,
    seconds,
    seeds_phrase,
    sig3,
    span,
    thousands,
    tt,
    verdict_word,
    words,
)
from convbench.analysis.learned import data, tracking
from convbench.analysis.stats import (
    LEVEL,
    MARGINS,
    Kind,
    Margins,
    Paired,
    Verdict,
    decide_points,
    fact_verdict,
    paired_verdicts,
    prediction_interval,
    time_ratio,
)
from convbench.analysis.study import Run

EXACT = 1e-4  # the largest logit difference that float32 rounding explains; above it crop or prune changed the net
NET_KINDS = {"size": "size", "width": "gates"}  # the paper's names for the two learned networks -> the column saying so


# ---- the tables the study is drawn from, once per run ------------------------------------------------

@dataclass(frozen=True)
class Frames:
    sweep: pd.DataFrame  # per unit and arch of the grid (data.sweep_stats)
    scells: pd.DataFrame  # per train cell of the grid
    lcells: pd.DataFrame  # per train cell of the learned study
    lstats: pd.DataFrame  # per unit and learned arch
    traj: pd.DataFrame  # the learned state per epoch


def frames(run: Run) -> Frames:
    """The study's tables, computed once per run (figures, tables, values and verdicts all read them)."""
    def compute() -> Frames:
        scells, lcells = data.sweep_cells(run), data.learned_cells(run)
        return Frames(data.sweep_stats(run, scells), scells, lcells, data.learned_stats(lcells),
                      data.trajectories(run, lcells))
    return run.cached("learned/frames", compute)


# ---- comparisons ------------------------------------------------------------------------------------

def rank(g: pd.DataFrame) -> pd.DataFrame:
    """Finished networks by accuracy as printed (highest first), then by parameters (fewest first)."""
    done = g[g["seeds"] > 0]
    return done.assign(_p=[-printed(m) for m in done["mean"]]).sort_values(["_p", "params", "arch"]).drop(columns="_p")


def overlap(a, b) -> bool:
    """Whether the printed intervals (mean +- ci) of two rows share a point; False without both intervals."""
    if pd.isna(a["ci"]) or pd.isna(b["ci"]):
        return False
    return abs(printed(a["mean"]) - printed(b["mean"])) <= printed(a["ci"]) + printed(b["ci"])


def kernel_words(k) -> str:
    return f"{int(k)}$\\times${int(k)}"


def kept_words(kernels) -> str:
    """'5x5' where every block kept the same size, else '5x5, 3x3' in block order."""
    return kernel_words(kernels[0]) if len(set(kernels)) == 1 else ", ".join(kernel_words(k) for k in kernels)


def number(x: float) -> str:
    """A setting as written in the config (2.0 -> 2, 0.05), a minus sign in math mode."""
    text = f"{x:g}"
    return f"${text}$" if text.startswith("-") else text


def fraction(x: float) -> str:
    f = Fraction(x).limit_denominator(20)
    return f"{f.numerator}/{f.denominator}" if f.denominator != 1 and abs(float(f) - x) < 1e-9 else f"{x:g}"


def seed_tests(scells: pd.DataFrame, unit: str, arch: str) -> pd.Series:
    """Test accuracy per seed of one grid network in one unit (ok cells)."""
    g = scells[(scells["unit"] == unit) & (scells["arch"] == arch) & (scells["status"] == "ok")] if len(scells) \
        else scells
    return g.set_index("seed")["test"].astype(float) if len(g) else pd.Series(dtype=float)


def size_comparison(r, sweep: pd.DataFrame, scells: pd.DataFrame):
    """Does the learned kernel size land on the size the grid ranks best among its networks of one convolution per
    block (at the learned net's widths where the grid has them), by accuracy then parameters? (Paired or None, the
    word where no paired comparison applies, the grid's best row.) The comparison: the grid's accuracy at the
    learned size minus its best's, per seed (the grid's networks share seeds)."""
    if not r.size or r.seeds == 0:
        return None, None, None
    grid = sweep[(sweep["unit"] == r.unit) & (sweep["seeds"] > 0)]
    if grid.empty:  # no grid network trained on the learned net's task
        return None, None, None
    plain = grid[[set(d) == {1} and len(set(k)) == 1 for d, k in zip(grid["depths"], grid["kernels"])]]
    same = plain[[w == r.widths for w in plain["widths"]]]
    candidates = rank(same if len(same) else plain)
    if candidates.empty:
        return None, None, None
    best, learned = candidates.iloc[0], r.kept_kernels
    by_k = {row["kernels"][0]: row for _, row in candidates.iterrows()}
    if len(set(learned)) > 1:
        return None, "a different size per block", best
    if learned[0] not in by_k:
        return None, "a size the grid did not try", best
    hit = by_k[learned[0]]
    if hit["arch"] == best["arch"]:
        return None, "the size the grid ranks best", best
    d = (seed_tests(scells, r.unit, hit["arch"]) - seed_tests(scells, r.unit, best["arch"])).dropna()
    return Paired(f"learned/{r.unit}/{r.arch}/kernel", f"{r.arch} ({', '.join(map(str, learned))})", best["arch"],
                  "test accuracy of the grid at the learned size minus the grid's best", tuple(d), "size"), None, best


def size_verdict(r, sweep: pd.DataFrame, scells: pd.DataFrame | None = None, margins: Margins = MARGINS
                 ) -> Verdict | None:
    """size_comparison as a Verdict: the paired t interval at LEVEL (one comparison per learned network) decided
    against the accuracy margin or, where the learned size is the grid's best, a different size per block or untried,
    that fact without interval."""
    paired, word, best = size_comparison(r, sweep, scells if scells is not None else pd.DataFrame())
    if paired is not None:
        found = paired_verdicts([paired], margins)
        return found[0] if found else None
    if word is None:
        return None
    est = 0.0 if word == "the size the grid ranks best" else math.nan
    return fact_verdict(f"learned/{r.unit}/{r.arch}/kernel", f"{r.arch} ({', '.join(map(str, r.kept_kernels))})",
                        best["arch"], "test accuracy of the grid at the learned size minus the grid's best", est, est,
                        est, word, "points", int(r.seeds))


def accuracy_verdict(r, sweep: pd.DataFrame, scells: pd.DataFrame | None = None, margins: Margins = MARGINS
                     ) -> Verdict | None:
    """The shrunk net's test accuracy against the most accurate hand-picked network's. One learned seed: its
    accuracy minus the best's mean, judged by the t prediction interval of a new seed of the best (a single run is
    one draw, not a mean): interval = learned minus the prediction interval's ends. Several seeds: the mean of the
    per-seed differences (same seeds, same data order) with its t interval. Either decided against the accuracy
    margin; without an interval (one seed of the best too), undecided."""
    ranked = rank(sweep[sweep["unit"] == r.unit]) if len(sweep) else sweep
    if r.seeds == 0 or ranked.empty:
        return None
    best, key = ranked.iloc[0], f"learned/{r.unit}/{r.arch}/vs-best"
    grid = seed_tests(scells if scells is not None else pd.DataFrame(), r.unit, best["arch"])
    if r.seeds >= 2 and len(grid) >= 2:
        learned = pd.Series(r.seed_tests) if isinstance(getattr(r, "seed_tests", None), dict) else pd.Series(dtype=float)
        d = (learned - grid).dropna()
        found = paired_verdicts([Paired(key, f"{r.arch} (shrunk)", best["arch"], "test accuracy", tuple(d))], margins)
        if found:
            return found[0]
    mean, lo, hi, _ = prediction_interval(grid if len(grid) else [best["mean"]])
    est = r.test - mean
    lo, hi, kind = (r.test - hi, r.test - lo, Kind.PREDICTION) if pd.notna(lo) else (math.nan, math.nan, Kind.NONE)
    return Verdict(key, f"{r.arch} (shrunk)", best["arch"], "test accuracy", est, lo, hi,
                   decide_points(lo, hi, margins.accuracy), kind, margins.accuracy, "points", "accuracy", int(r.seeds))


STEP_FACT = "a ratio whose quartile range decides no direction against"


def step_verdict(r, margins: Margins = MARGINS) -> Verdict | None:
    """A training step of the shrunk network over one of the masked or gated network, with the range from the
    quartiles: a fact, not a decision (a spread of one launch's repeats is no confidence interval, so it claims
    neither faster nor slower)."""
    if pd.isna(r.step_shrunk) or pd.isna(r.step_learned):
        return None
    x, lo, hi = time_ratio(r.step_shrunk, r.step_shrunk_iqr, r.step_learned, r.step_learned_iqr)
    return fact_verdict(f"learned/{r.unit}/{r.arch}/step", f"{r.arch} (shrunk)", f"{r.arch} (trained)",
                        "training step time", x, lo, hi, STEP_FACT, n=int(r.seeds), kind=Kind.QUARTILES)


def dominated_by(params: float, accuracy: float, grid: pd.DataFrame) -> list[str]:
    """Hand-picked archs both at most as large and at least as accurate (as printed), one of the two strictly."""
    return [g.arch for g in grid.itertuples() if g.seeds > 0 and g.params <= params
            and printed(g.mean) >= printed(accuracy) and (g.params < params or printed(g.mean) > printed(accuracy))]


def twin(r, sweep: pd.DataFrame):
    """The hand-picked arch of the unit with the shrunk net's blocks (kernel, filters, depth), if any."""
    if r.shrunk_shape is None:
        return None
    for _, g in sweep[sweep["unit"] == r.unit].iterrows():
        if tuple(zip(g["kernels"], g["widths"], g["depths"])) == tuple(r.shrunk_shape):
            return g
    return None


def cost_word(whole: float, one: float, margin: float = MARGINS.ratio) -> str:
    """What the two ratios (whole grid / learned run, one seed of the grid / learned run) say: a wall-clock time of
    one process has no interval, so a ratio within the time margin of 1 is 'about as much' (at 0.99 two runs of one
    commit said 'more than one seed' and 'less than even one seed')."""
    near = lambda x: 1 / margin <= x <= margin  # noqa: E731
    if one > margin:
        return "less than even one seed of the grid"
    if near(one):
        return "about as much as one seed of the grid"
    if whole < 1 / margin:
        return "more than the whole grid"
    if near(whole):
        return "about as much as the whole grid"
    return "less than the whole grid but more than one seed of it"


def costs(f: Frames) -> pd.DataFrame:
    """Per unit and learned arch: the whole grid search (every train cell of the kernel study) and one seed of it
    against one learned run, in wall-clock seconds of the cells."""
    columns = ["unit", "arch", "grid", "grid_cells", "grid_seeds", "per_seed", "wall", "runs", "whole", "one"]
    rows = []
    for unit, g in f.lcells.groupby("unit", sort=False) if len(f.lcells) else []:
        grid = f.scells[f.scells["unit"] == unit].dropna(subset=["wall"]) if len(f.scells) else f.scells
        if grid.empty:
            continue
        total, seeds = grid["wall"].sum(), grid["seed"].nunique()
        for arch, a in g.dropna(subset=["wall"]).groupby("arch", sort=False):
            wall = a["wall"].mean()
            rows.append([unit, arch, total, len(grid), seeds, total / seeds, wall, len(a), total / wall,
                         total / seeds / wall])
    return pd.DataFrame(rows, columns=columns)


def cost_verdict(c: pd.DataFrame, margins: Margins = MARGINS) -> Verdict | None:
    """The dearest learned run against the grid: estimate and hi, the whole grid's time over it; lo, one seed's. The
    word holds for every learned run (it reads the smallest of each ratio)."""
    if c.empty:
        return None
    whole, one = c["whole"].min(), c["one"].min()
    return fact_verdict("learned/cost", "one learned run (the dearest)", "the grid search",
                        "wall-clock time of the grid (lo: one seed of it) over one learned run", whole, one, whole,
                        cost_word(whole, one, margins.ratio), "ratio", len(c))


def verdicts_of(r, sweep: pd.DataFrame, scells: pd.DataFrame | None = None, margins: Margins = MARGINS
                ) -> list[Verdict]:
    return [v for v in (size_verdict(r, sweep, scells, margins), accuracy_verdict(r, sweep, scells, margins),
                        step_verdict(r, margins))
            if v is not None]


def main_unit(f: Frames) -> str | None:
    """The setup whose results the text quotes: the learned study's first (the grid's first without one)."""
    for table in (f.lstats, f.sweep):
        if len(table):
            return table["unit"].iloc[0]
    return None


def net(f: Frames, kind: str):
    """The main setup's row of the learned arch of a kind ('size' or 'width'): the first that learns it."""
    if f.lstats.empty:
        return None
    rows = f.lstats[(f.lstats["unit"] == main_unit(f)) & f.lstats[NET_KINDS[kind]]]
    return next(rows.itertuples(), None)


# ---- verdicts ---------------------------------------------------------------------------------------

def verdicts(run: Run) -> list[Verdict]:
    """Per unit and learned arch: kernel (size), vs-best (accuracy), step; the main setup's again under
    learned/size/... and learned/width/...; learned/cost."""
    f = frames(run)
    out = [v for r in f.lstats.itertuples() for v in verdicts_of(r, f.sweep, f.scells, run.margins)]
    for kind in NET_KINDS:
        r = net(f, kind)
        if r is not None:
            out += [v.renamed(v.key.replace(f"learned/{r.unit}/{r.arch}/", f"learned/{kind}/"))
                    for v in verdicts_of(r, f.sweep, f.scells, run.margins)]
    cost = cost_verdict(costs(f), run.margins)
    return out + ([cost] if cost else [])


# ---- values -----------------------------------------------------------------------------------------


def constant_values() -> dict[str, str]:
    return {"learned/ramp": f"{data.RAMP:g}", "learned/threshold": f"{data.THRESHOLD:g}",
            "learned/beta": fraction(method.BETA), "learned/gamma": f"{method.GAMMA:g}",
            "learned/zeta": f"{method.ZETA:g}", "learned/exact-bound": sci(EXACT),
            "learned/level": f"{LEVEL * 100:.0f}",
            "learned/sweep/equal-params": f"{data.EQUAL_PARAMS * 100:.0f}"}


def optimizer_words(optimizer, momentum) -> str:
    name = str(optimizer).lower()
    if name == "sgd":
        return f"SGD with momentum {momentum:g}" if pd.notna(momentum) and momentum else "SGD"
    return {"adam": "Adam", "adamw": "AdamW"}.get(name, escape(optimizer))


def recipe(cells: pd.DataFrame) -> dict[str, str]:
    """Optimizer, learning rate and epochs of a study's train cells, as printed."""
    if cells.empty:
        return {"optimizer": "--", "lr": "--", "epochs": "--"}
    return {"optimizer": words(sorted({optimizer_words(o, m) for o, m in zip(cells["optimizer"], cells["momentum"])})),
            "lr": words(f"{x:g}" for x in sorted(cells["lr"].dropna().unique())) or "--",
            "epochs": words(f"{x:g}" for x in sorted(cells["planned_epochs"].dropna().unique())) or "--"}


def sweep_values(f: Frames) -> dict[str, str]:
    sweep, scells = f.sweep, f.scells
    values = {"learned/sweep/grid": flag(len(sweep) and (sweep["seeds"] > 0).any()),
              "learned/sweep/seeds": seeds_phrase(sweep["seeds"]),
              "learned/sweep/archs": str(sweep["arch"].nunique()), "learned/sweep/failed": str(int(sweep["failed"].sum())),
              "learned/sweep/reference": tt(data.reference_arch(scells)) if len(scells) else "--"}
    values.update({f"learned/sweep/{k}": v for k, v in recipe(scells).items()})
    for r in sweep.itertuples():
        base = f"learned/sweep/{r.unit}/{r.arch}"
        values[f"{base}/seeds"] = str(r.seeds)
        if pd.notna(r.params):
            values[f"{base}/params"] = thousands(r.params)
        if pd.notna(r.mean):
            values[f"{base}/test-accuracy"] = percent(r.mean)
        if pd.notna(r.ci):
            values[f"{base}/test-accuracy-ci"] = percent(r.ci)
    unit = main_unit(f)
    ranked = rank(sweep[sweep["unit"] == unit]) if len(sweep) else sweep
    values.update({"learned/sweep/setup": escape(ranked["label"].iloc[0]) if len(ranked) else "--",
                   "learned/sweep/best": "--", "learned/sweep/best-accuracy": "--", "learned/sweep/best-params": "--",
                   "learned/sweep/tied": "none", "learned/sweep/front": "none", "learned/sweep/intervals": "0",
                   "learned/sweep/best-seeds": "--", "learned/sweep/one-seed": "none",
                   "learned/sweep/has-one-seed": "0"})
    if len(ranked):
        best = ranked.iloc[0]
        tied = [r["arch"] for _, r in ranked.iloc[1:].iterrows() if overlap(r, best)]
        single = ranked[ranked["seeds"] == 1]["arch"]  # no interval: neither tied nor apart
        values.update({"learned/sweep/intervals": flag(best["seeds"] >= 2),
                       "learned/sweep/best-seeds": count_words(int(best["seeds"]), "seed"),
                       "learned/sweep/one-seed": words(tt(a) for a in single) or "none",
                       "learned/sweep/has-one-seed": flag(len(single))})
        front = ranked[ranked["front"]].sort_values("params")["arch"]
        values.update({"learned/sweep/best": tt(best["arch"]), "learned/sweep/best-accuracy": pm(best["mean"], best["ci"]),
                       "learned/sweep/best-params": thousands(best["params"]),
                       "learned/sweep/tied": words(tt(a) for a in tied) or "none",
                       "learned/sweep/front": words(tt(a) for a in front) or "none"})
    return values


def cell_values(f: Frames, cost: pd.DataFrame) -> dict[str, str]:
    """learned/<unit>/<arch>/...: the old per-cell keys."""
    values = {}
    lcells = f.lcells[f.lcells["train_fraction"] == f.lcells["train_fraction"].max()] if len(f.lcells) else f.lcells
    for r in f.lstats.itertuples():
        base = f"learned/{r.unit}/{r.arch}"
        if r.seeds == 0:
            continue
        ok = lcells[(lcells["unit"] == r.unit) & (lcells["arch"] == r.arch) & (lcells["status"] == "ok")]
        for metric in ("train_accuracy", "gap"):  # median over seeds, as every study's accuracy keys
            if f"{metric}:final" in ok and ok[f"{metric}:final"].notna().any():
                values[f"{base}/{metric.replace('_', '-')}"] = percent(ok[f"{metric}:final"].median())
        values[f"{base}/test-accuracy"] = percent(r.test)
        values[f"{base}/trained-test-accuracy"] = percent(r.trained)
        values[f"{base}/params"] = thousands(r.shrunk_params)
        values[f"{base}/kernels"] = ", ".join(str(k) for k in r.kept_kernels)
        values[f"{base}/maps"] = ", ".join(f"{m:.0f}" for m in r.maps_mean)
        values[f"{base}/max-logit-difference"] = sci(r.max_diff)
        if pd.notna(r.step_shrunk) and pd.notna(r.step_learned):
            values[f"{base}/step-ratio"] = ratio(r.step_shrunk / r.step_learned)
    for c in cost.itertuples():
        values[f"learned/{c.unit}/{c.arch}/cost-ratio"] = ratio(c.whole)
    return values


def net_values(f: Frames, kind: str) -> dict[str, str]:
    """learned/size/... or learned/width/...: the main setup's learned network of that kind."""
    base, r = f"learned/{kind}", net(f, kind)
    if r is None or r.seeds == 0:
        return {f"{base}/ran": "0"}
    learning = [i for i, v in enumerate(r.init_radius if kind == "size" else r.init_log_alpha) if v is not None]
    values = {f"{base}/ran": "1", f"{base}/arch": tt(r.arch, hyphens=True), f"{base}/seeds": str(r.seeds),
              f"{base}/test-accuracy": pm(r.test, r.test_ci),
              f"{base}/trained-test-accuracy": pm(r.trained, r.trained_ci),
              f"{base}/params": thousands(r.shrunk_params), f"{base}/params-initial": thousands(r.params_initial),
              f"{base}/mflops": sig3(r.shrunk_flops / 1e6), f"{base}/mflops-initial": sig3(r.flops_initial / 1e6)}
    if kind == "size":
        values |= {f"{base}/max-kernel": words(sorted({str(r.kernels[i]) for i in learning})),
                   f"{base}/init-radius": words(sorted({number(r.init_radius[i]) for i in learning})),
                   f"{base}/radius-penalty": words(sorted({number(r.radius_penalty[i]) for i in learning})),
                   f"{base}/radius-lr": f"{r.radius_lr:g}" if pd.notna(r.radius_lr) else "--",
                   f"{base}/kept": kept_words(r.kept_kernels),
                   f"{base}/agree": flag(r.kernels_agree == r.seeds)}
        radius = f.traj[(f.traj["quantity"] == "radius") & (f.traj["unit"] == r.unit) & (f.traj["arch"] == r.arch)]
        last = radius[radius["epoch"] == radius.groupby("seed")["epoch"].transform("max")]
        values[f"{base}/final-radius"] = span(last["value"])
    else:
        values |= {f"{base}/init-log-alpha": words(sorted({number(r.init_log_alpha[i]) for i in learning})),
                   f"{base}/l0-penalty": words(sorted({number(r.l0_penalty[i]) for i in learning})),
                   f"{base}/gate-lr": f"{r.gate_lr:g}" if pd.notna(r.gate_lr) else "--",
                   f"{base}/kept": words(f"{m:.0f} of {i}" if r.seeds == 1 else f"{m:.1f} of {i}"
                                         for m, i in zip(r.maps_mean, r.maps))}
    grid = f.sweep[f.sweep["unit"] == r.unit]
    better = dominated_by(r.shrunk_params, r.test, grid)
    values |= {f"{base}/dominated": flag(better), f"{base}/dominators": words(tt(a) for a in better) or "none"}
    same = twin(r, f.sweep)
    values[f"{base}/has-twin"] = flag(same is not None)
    if same is not None:
        values |= {f"{base}/twin": tt(same["arch"]), f"{base}/twin-accuracy": pm(same["mean"], same["ci"])}
    size = size_verdict(r, f.sweep, f.scells) if kind == "size" else None
    if size is not None:
        best = f.sweep[(f.sweep["unit"] == r.unit) & (f.sweep["arch"] == size.reference)].iloc[0]
        values |= {f"{base}/grid-best": tt(best["arch"]), f"{base}/grid-best-kernel": kernel_words(best["kernels"][0]),
                   f"{base}/grid-best-accuracy": pm(best["mean"], best["ci"])}
    values[f"{base}/has-grid"] = flag(size is not None or kind != "size")
    return values


def learned_values(f: Frames, cost: pd.DataFrame) -> dict[str, str]:
    lstats, lcells = f.lstats, f.lcells
    units = list(dict.fromkeys(lstats["unit"])) if len(lstats) else []
    main = main_unit(f)
    words_per_unit = {}
    for unit in units:
        rows = lstats[lstats["unit"] == unit]
        words_per_unit[unit] = sorted((r.arch, r.kept_kernels, *(verdict_word(v) for v in verdicts_of(r, f.sweep, f.scells)))
                                      for r in rows.itertuples())
    done = lstats[lstats["seeds"] > 0] if len(lstats) else lstats
    worst = done["max_diff"].max() if len(done) else math.nan
    values = {"learned/setup": escape(lstats.loc[lstats["unit"] == main, "label"].iloc[0]) if len(lstats) else "--",
              "learned/setups": count_words(len(units), "setup"),
              "learned/setups-agree": flag(len({repr(w) for w in words_per_unit.values()}) <= 1),
              "learned/several-setups": flag(len(units) > 1),
              "learned/seeds": seeds_phrase(lstats["seeds"]) if len(lstats) else "0",
              "learned/one-seed": flag(len(lstats) == 0 or lstats["seeds"].max() <= 1),
              "learned/failed": str(int(lstats["failed"].sum())) if len(lstats) else "0",
              "learned/max-logit-difference": sci(worst), "learned/exact": flag(pd.notna(worst) and worst <= EXACT),
              "learned/same-recipe": flag(len(lcells) and len(f.scells) and recipe(lcells) == recipe(f.scells))}
    values.update({f"learned/{k}": v for k, v in recipe(lcells).items()})
    cells = pd.concat([c for c in (lcells, f.scells) if len(c)]) if len(lcells) or len(f.scells) else lcells
    first = cells[cells["dataset"].notna()].iloc[0] if len(cells) and cells["dataset"].notna().any() else None
    values.update({"learned/dataset": tt(first["dataset"]) if first is not None else "--",
                   "learned/train-size": thousands(first["train_size"]) if first is not None else "--",
                   "learned/test-size": thousands(first["test_size"]) if first is not None else "--",
                   "learned/image-size": f"{first['image_size']:.0f}" if first is not None else "--"})
    values.update({"learned/grid-time": span(cost.drop_duplicates("unit")["grid"], seconds) if len(cost) else "--",
                   "learned/run-time": span(cost["wall"], seconds) if len(cost) else "--",
                   "learned/has-cost": flag(len(cost))})
    for kind in NET_KINDS:
        values.update(net_values(f, kind))
    return values


KNEE_POINTS = 0.01  # the width grid's knee: its narrowest network within 1 point of its best
KNEE_BAND = 0.3  # a learned width within 30 % of the knee's maps finds it


def knee(f: Frames, kernels: tuple) -> pd.Series | None:
    """The hand-picked width grid's knee in the main setup: among its one-convolution networks with the gated
    networks' kernels, the fewest maps whose mean test accuracy is within KNEE_POINTS of the best."""
    grid = f.sweep[(f.sweep["unit"] == main_unit(f)) & (f.sweep["seeds"] > 0)]
    grid = grid[[tuple(k) == tuple(kernels) and set(d) == {1} for k, d in zip(grid["kernels"], grid["depths"])]]
    if grid.empty:
        return None
    near = grid[grid["mean"] >= grid["mean"].max() - KNEE_POINTS]
    return near.loc[near["maps"].map(sum).idxmin()]


STEPS_UP = {False: "as the penalty rose", True: "at every step up in the penalty"}  # by: more than two penalties


def width_knee_values(f: Frames, rows: pd.DataFrame) -> dict[str, str]:
    """learned/width/{knee-arch,knee-maps,near-knee,falls,steps-up}: the grid's knee, how many gated runs kept maps
    within KNEE_BAND of it, whether the mean kept maps fall as the penalty grows, and over which steps (one step
    between two penalties, every step between more)."""
    base = "learned/width"
    kernels = f.lcells.loc[f.lcells["gates"], "kernels"] if len(f.lcells) else pd.Series(dtype=object)
    k = knee(f, kernels.iloc[0]) if len(kernels) else None
    if k is None or rows.empty:
        return {**{f"{base}/{key}": "--" for key in ("knee-arch", "knee-maps", "near-knee")},
                f"{base}/falls": flag(False), f"{base}/steps-up": STEPS_UP[False]}
    kept = rows["kept_maps"].map(sum)
    means = kept.groupby(rows["penalty"]).mean().sort_index()
    return {f"{base}/knee-arch": tt(k["arch"]), f"{base}/knee-maps": f"{sum(k['maps'])}",
            f"{base}/near-knee": f"{int((abs(kept / sum(k['maps']) - 1) <= KNEE_BAND).sum())} of {len(rows)}",
            f"{base}/falls": flag(len(means) > 1 and bool((means.diff().dropna() < 0).all())),
            f"{base}/steps-up": STEPS_UP[len(means) > 2]}


def penalty_values(f: Frames) -> dict[str, str]:
    """The penalty sweep of the main setup, per kind: the penalties, what each run kept (the shrunk network's field
    in pixels for size, its maps for width) and its test accuracy; for size on the planted task, how many runs kept
    a field that covers the planted scale, among all and among the converged."""
    sweep = data.penalty_sweep(f.lcells)
    sweep = sweep[sweep["unit"] == main_unit(f)] if len(sweep) else sweep
    scale = sweep["planted_scale"].dropna()
    values = {"learned/planted": flag(len(scale)), "learned/planted-scale": f"{scale.max():.0f}" if len(scale) else "--"}
    for kind in NET_KINDS:
        rows = sweep[sweep["kind"] == kind]
        base = f"learned/{kind}/sweep"
        values[f"{base}/ran"] = flag(rows["penalty"].nunique() > 1)
        penalties = sorted(rows["penalty"].unique())
        kept = rows["shrunk_field"] if kind == "size" else rows["kept_maps"].map(lambda m: sum(m) if m else math.nan)
        # per penalty, in the order of `penalties`: one number, or the range over its seeds
        values |= {f"{base}/penalties": words(number(p) for p in penalties) or "--", f"{base}/runs": str(len(rows)),
                   f"{base}/kept": words(span(kept[rows["penalty"] == p], "{:.0f}".format) for p in penalties) or "--",
                   f"{base}/accuracy": words(span(100 * rows.loc[rows["penalty"] == p, "test"], "{:.1f}".format)
                                             for p in penalties) or "--",
                   f"{base}/initial": f"{sum(rows['maps'].iloc[0]):.0f}" if kind == "width" and len(rows) else "--"}
        if kind == "size":  # '--' off the planted task
            covers = rows["shrunk_field"] >= rows["planted_scale"]
            converged = rows["converged"] == 1
            values |= {f"{base}/any-converged": flag(converged.any()),
                       f"{base}/covering": f"{int(covers.sum())} of {len(rows)}" if len(scale) else "--",
                       f"{base}/covering-converged": f"{int((covers & converged).sum())} of {int(converged.sum())}"
                       if len(scale) else "--"}
        else:
            values |= width_knee_values(f, rows)
    return values


def values(run: Run) -> dict[str, str]:
    f = frames(run)
    cost = costs(f)
    return {**constant_values(), **sweep_values(f), **learned_values(f, cost), **cell_values(f, cost),
            **penalty_values(f), **tracking.values(run)}


def ran(run: Run) -> bool:
    """Whether any cell of the learned study finished and was shrunk."""
    lstats = frames(run).lstats
    return bool(len(lstats) and (lstats["seeds"] > 0).any())


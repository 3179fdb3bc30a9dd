"""The activation study's frames, drawn from the tidy table: the variants, seed statistics of accuracy and gap, the
gap's growth as the data shrink, and time ratios against ReLU with bootstrap intervals of the raw samples.

A variant is read from its spec, not its name: k is the first block's maxout pieces (1 for ReLU), and it matches a
ReLU arch of the study by filters where its first block has as many filters, by width where it has k times as many,
by parameters where its parameters are within EQUAL_PARAMS of a ReLU arch's on a trained network (equal_params).
Only replicate train cells count (a cross-framework repeat is no new seed); per-seed differences pair a variant with
its ReLU arch on the same seed. A "unit" is a setup (framework-engine), with the config appended
where the study ran more than one.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from convbench.analysis.formatting import escape, setup_label
from convbench.analysis.query import (
    converged_pairs,
    datasets,
    launch_medians,
    per_seed,
    replicates,
    seed_summary,
    summarise,
    with_config,
)
from convbench.analysis.stats import t_interval, time_interval
from convbench.analysis.study import Run

STUDY = "activation"
MATCHING = {"reference": "ReLU", "filters": "equal filters", "width": "equal width", "params": "equal parameters",
            "other": "other"}
EQUAL_PARAMS = 0.02  # a variant within this relative distance of a ReLU arch's parameters matches them
PHASES = ["forward", "backward"]
UNIT_KEYS = ["setup", "framework", "engine", "config", "dataset"]  # a train cell's data set: pairs never cross it


def network_params(df: pd.DataFrame) -> pd.DataFrame:
    """Parameters per arch (rows) and network it was built as (columns): each data set it trained on, and 'speed' for
    the timed network (the synthetic input: its classifier, and so its count, differs from a trained one's)."""
    cells = df[(df["study"] == STUDY) & df["task"].isin(["train", "speed"])].dropna(subset=["params"])
    network = cells["dataset"].where(cells["task"] == "train", "speed").fillna("train")
    return cells.assign(network=network).drop_duplicates(["arch", "network"]).pivot(
        index="arch", columns="network", values="params")


def equal_params(counts: pd.DataFrame, arch: str, relu: str) -> bool:
    """Whether arch's parameters lie within EQUAL_PARAMS of relu's on a network both were built as: a trained one
    where both trained (the widths were chosen on the trained task), else the timed one."""
    if not {arch, relu} <= set(counts.index):
        return False
    a, b = counts.loc[arch], counts.loc[relu]
    both = [c for c in counts.columns if pd.notna(a[c]) and pd.notna(b[c])]
    trained = [c for c in both if c != "speed"] or both
    return any(abs(a[c] / b[c] - 1) <= EQUAL_PARAMS for c in trained)


def variants(df: pd.DataFrame) -> pd.DataFrame:
    """One row per arch of the study: k, matching (reference, filters, width, params or other), the ReLU arch it is
    compared with and the maps leaving each block; ReLU first, then by k and matching."""
    cells = df[(df["study"] == STUDY) & df["task"].isin(["train", "speed"])].drop_duplicates("arch")
    cells = cells.assign(k=[int(p) if a == "maxout" else 1 for a, p in zip(cells["activation"], cells["pieces"])])
    relus = cells[cells["k"] == 1]
    relu = dict(zip(relus["width"], relus["arch"]))  # first width -> arch
    counts = network_params(df)
    rows = []
    for r in cells.itertuples():
        near = [a for a in relus["arch"] if equal_params(counts, r.arch, a)]
        if r.k == 1:
            matching, reference = "reference", r.arch
        elif r.width in relu:
            matching, reference = "filters", relu[r.width]
        elif r.width % r.k == 0 and r.width // r.k in relu:
            matching, reference = "width", relu[r.width // r.k]
        elif near:
            matching, reference = "params", near[0]
        else:
            matching, reference = "other", None
        rows.append({"arch": r.arch, "k": r.k, "matching": matching, "reference": reference, "maps": r.maps})
    out = pd.DataFrame(rows, columns=["arch", "k", "matching", "reference", "maps"])
    out["rank"] = out["matching"].map(list(MATCHING).index)
    return out.sort_values(["k", "rank", "arch"]).drop(columns="rank").reset_index(drop=True)


def compared(df: pd.DataFrame) -> pd.DataFrame:
    """The maxout variants that have a ReLU arch to be compared with."""
    v = variants(df)
    return v[(v["k"] > 1) & v["reference"].notna()]


def many_configs(df: pd.DataFrame) -> bool:
    return with_config(df[df["study"] == STUDY])["config"].nunique() > 1


def many_datasets(df: pd.DataFrame) -> bool:
    return df.loc[(df["study"] == STUDY) & (df["task"] == "train"), "dataset"].nunique() > 1


def with_units(frame: pd.DataFrame, df: pd.DataFrame) -> pd.DataFrame:
    """frame with its unit (the key part), Label (plain) and Unit (LaTeX) columns: the setup, with the config where
    the study ran in several, and a train row's data set where it trained on several."""
    many, sets = many_configs(df), many_datasets(df)
    dataset = datasets(frame)
    unit = frame["setup"] + "-" + frame["config"] if many else frame["setup"]
    unit = unit + ("-" + dataset).where(dataset != "", "") if sets else unit
    label = [setup_label(f, e) + (f" ({c})" if many else "") + (f", {d}" if sets and d else "")
             for f, e, c, d in zip(frame["framework"], frame["engine"], frame["config"], dataset)]
    return frame.assign(unit=unit, Label=label, Unit=[escape(x) for x in label])


def cells(df: pd.DataFrame, task: str) -> pd.DataFrame:
    """The study's cells of a task; of train cells the replicates only."""
    found = with_config(df[(df["study"] == STUDY) & (df["task"] == task)])
    return replicates(found) if task == "train" else found


def seed_diffs(df: pd.DataFrame, unit: str, arch: str, reference: str) -> tuple[tuple, tuple, int]:
    """arch minus reference per seed in one unit: test accuracy at the largest training fraction (seeds where both
    converged: a run stopped at the cap answers no accuracy question), the gap's growth from the largest to the
    smallest fraction (seeds where all four runs converged), and
    how many of the accuracy pairs converged."""
    train = cells(df, "train")
    keys = ("unit", "train_fraction")
    train = with_units(train, df) if len(train) else train
    if train.empty:
        return (), (), 0
    test, gap = (per_seed(train, m, keys) for m in ("test_accuracy", "gap"))
    conv = converged_pairs(train, keys)
    if test.empty or not {arch, reference} <= set(test.columns):
        return (), (), 0
    fractions = sorted(test.index.get_level_values("train_fraction").unique())
    largest, smallest = fractions[-1], fractions[0]

    def at(wide, fraction):
        return wide.xs((unit, fraction), level=("unit", "train_fraction")) if (unit, fraction) in \
            wide.index.droplevel("seed") else pd.DataFrame(columns=wide.columns)

    t, c = at(test, largest), at(conv, largest)
    d = (t[arch] - t[reference]).dropna()
    both = c.reindex(d.index)
    done = ((both.get(arch) == 1) & (both.get(reference) == 1)) if len(both) else pd.Series(False, index=d.index)
    converged = int(done.sum())
    d = d[done]
    growth = ()
    if smallest != largest and not gap.empty and {arch, reference} <= set(gap.columns):
        g_s, g_l, c_s = at(gap, smallest), at(gap, largest), at(conv, smallest)
        ok = pd.concat([c_s[[arch, reference]], c[[arch, reference]]], axis=1).eq(1).all(axis=1)
        change = (g_s[arch] - g_l[arch]) - (g_s[reference] - g_l[reference])
        growth = tuple(float(x) for x in change[ok.reindex(change.index, fill_value=False)].dropna())
    return tuple(float(x) for x in d), growth, converged


def gap_diffs(df: pd.DataFrame, unit: str, arch: str, reference: str) -> dict[float, tuple[float, ...]]:
    """arch minus reference in train/test gap per seed, at each training fraction of one unit, over the seeds where
    both runs converged: how maxout's overfitting against ReLU's changes with the size of the training set."""
    train = cells(df, "train")
    if train.empty:
        return {}
    train, keys = with_units(train, df), ("unit", "train_fraction")
    gap, conv = per_seed(train, "gap", keys), converged_pairs(train, keys)
    if gap.empty or not {arch, reference} <= set(gap.columns):
        return {}
    out = {}
    for (u, fraction), wide in gap.groupby(level=["unit", "train_fraction"], sort=True):
        both = conv.reindex(wide.index)
        done = (both.get(arch) == 1) & (both.get(reference) == 1)
        if u == unit:
            out[float(fraction)] = tuple(float(x) for x in (wide[arch] - wide[reference])[done].dropna())
    return out


def converged_only(train: pd.DataFrame) -> pd.DataFrame:
    """Train rows without the cells that stopped at the epoch cap (converged 0); cells that do not say stay."""
    stopped = train.loc[(train["metric"] == "converged") & (train["value"] == 0), "cell_id"]
    return train[~train["cell_id"].isin(stopped)]


def seed_stats(df: pd.DataFrame) -> pd.DataFrame:
    """Per unit x arch x training fraction: test accuracy and gap (mean, t half-width) over the seeds whose run
    converged (seeds; a run stopped at the cap answers no accuracy question, as in the comparisons), the seeds
    trained (trained), runs that diverged (final training loss not finite), the trained network's parameters and the
    variant."""
    train = cells(df, "train")
    keys = [*UNIT_KEYS, "arch", "train_fraction"]
    done = converged_only(train)
    test, gap, every = (seed_summary(done, "test_accuracy"), seed_summary(done, "gap"),
                        seed_summary(train, "test_accuracy"))
    if every.empty:
        columns = [*keys, "test", "test_ci", "seeds", "trained", "gap", "gap_ci", "diverged", "params",
                   *variants(df).columns[1:]]
        return with_units(pd.DataFrame(columns=columns), df)
    out = every[keys + ["seeds"]].rename(columns={"seeds": "trained"})
    out = out.merge(test[keys + ["mean", "ci", "seeds"]].rename(columns={"mean": "test", "ci": "test_ci"}), on=keys,
                    how="left").fillna({"seeds": 0})
    out = out.merge(gap[keys + ["mean", "ci"]].rename(columns={"mean": "gap", "ci": "gap_ci"}), on=keys, how="left")
    loss = train[(train["status"] == "ok") & (train["metric"] == "train_loss")]
    diverged = loss.assign(diverged=~np.isfinite(loss["value"].astype(float))).groupby(keys, dropna=False)["diverged"].sum()
    out = out.merge(diverged.reset_index(), on=keys, how="left").fillna({"diverged": 0})
    params = train.dropna(subset=["params"]).drop_duplicates("arch").set_index("arch")["params"]
    return with_units(out.assign(params=out["arch"].map(params)).merge(variants(df), on="arch"), df)


def gap_growth(df: pd.DataFrame) -> pd.DataFrame:
    """Per unit x arch: the gap at the smallest training fraction minus the gap at the largest, paired by seed, with
    its mean and t interval over seeds. Empty when the study trained at one fraction."""
    keys = [*UNIT_KEYS, "arch"]
    columns = [*keys, "change", "change_ci", "seeds", "smallest", "largest"]
    gaps = converged_only(cells(df, "train"))[lambda d: (d["status"] == "ok") & (d["metric"] == "gap")]
    fractions = sorted(gaps["train_fraction"].unique())
    if len(fractions) < 2:
        return with_units(pd.DataFrame(columns=columns), df)
    wide = gaps.pivot_table(index=[*keys, "seed"], columns="train_fraction", values="value")
    growth = (wide[fractions[0]] - wide[fractions[-1]]).dropna()
    rows = [[*k, *t_interval(g), fractions[0], fractions[-1]] for k, g in growth.groupby(level=keys, sort=False)]
    return with_units(pd.DataFrame(rows, columns=columns), df)


def time_ratios(df: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """Forward and backward time of each maxout variant over its ReLU arch's, per unit, with its interval
    (stats.time_interval: over the launch-level medians, paired by launch; a bootstrap of both cells' raw samples
    where they ran in one launch), seeds pooled."""
    columns = [*UNIT_KEYS, "arch", "reference", "phase", "ratio", "lo", "hi", "kind"]
    speed = cells(df, "speed")
    speed = speed[speed["status"] == "ok"].drop_duplicates("cell_id")
    reference = variants(df).set_index("arch")["reference"]
    rows = []
    for unit, group in speed.groupby(UNIT_KEYS, sort=False, dropna=False):
        ids = group.groupby("arch")["cell_id"].apply(list)
        for arch in ids.index:
            ref = reference.get(arch)
            if ref == arch or ref not in ids:
                continue
            for phase in PHASES:
                a, b = (samples[(samples["phase"] == phase) & samples["cell_id"].isin(ids[x])]["value"]
                        for x in (arch, ref))
                found = time_interval(*(launch_medians(df, phase, cell_id=ids[x]) for x in (arch, ref)), a, b)
                if found:
                    rows.append([*unit, arch, ref, phase, *found[:3], found[4]])
    return with_units(pd.DataFrame(rows, columns=columns), df)


def times(df: pd.DataFrame) -> pd.DataFrame:
    """Median forward and backward time per unit x arch (query.summarise) with the variant's columns."""
    out = summarise(cells(df, "speed"), "time")
    out = out[out["phase"].isin(PHASES)] if len(out) else out
    if out.empty:
        return out
    return with_units(out, df).merge(variants(df).drop(columns="maps"), on="arch")


def memory(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """saved_bytes or peak_bytes per unit x arch (medians over seeds)."""
    out = summarise(cells(df, "speed"), metric)
    return with_units(out, df) if len(out) else out.assign(unit=[], Label=[], Unit=[])


def params(df: pd.DataFrame, unit: str | None = None) -> pd.Series:
    """Parameters per arch: the trained network's (of one unit's cells where given, else of any unit's: a setup that
    only timed a variant reports it as trained, so that every setup's ratios are of one network), else the timed
    one's (a data set's classes set the head: planted's 2 against MNIST's 10, and the timed networks take 3 input
    channels)."""
    def per_arch(task: str, only: str | None) -> pd.Series:
        found = cells(df, task).dropna(subset=["params"])
        found = with_units(found, df) if len(found) else found
        found = found[found["unit"] == only] if only is not None and len(found) else found
        return found.drop_duplicates("arch").set_index("arch")["params"]
    return per_arch("train", unit).combine_first(per_arch("train", None)).combine_first(per_arch("speed", unit))


def trained(run: Run) -> bool:
    return bool((cells(run.tidy, "train")["status"] == "ok").any()) if len(run.tidy) else False


def ran(run: Run) -> bool:
    return len(run.tidy) > 0 and not variants(run.tidy).empty

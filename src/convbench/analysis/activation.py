"""The activation study: ReLU against maxout with k pieces, at equal filters and at equal width, in every framework.
Test accuracy and the train/test gap over training fractions as means with t intervals over seeds, forward and
backward time as ratios with bootstrap intervals of the raw samples, parameters, FLOPs and memory; two tables and
verdicts whose words come from the numbers.

A variant is read from its spec, not its name: k is the first block's maxout pieces (1 for ReLU), and it matches a
ReLU arch of the study by filters where its first block has as many filters, by width where it has k times as many.
A "unit" is a setup (framework-engine), with the config appended where the study ran more than one.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from convbench.analysis.claim import bootstrap_ratio
from convbench.analysis.tables import (booktabs, escape, flagged, ms, noisy_note, percent, placeholder, ratio, sig3,
                                       thousands, tt, words)
from convbench.analysis.tidy import (LEVEL, seed_summary, setup_label, setup_rank, summarise, t_interval, t_quantile,
                                     with_config)

STUDY = "activation"
MATCHING = {"reference": "ReLU", "filters": "equal filters", "width": "equal width", "other": "other"}
PHASES = ["forward", "backward"]
MIB = 2**20
CI = f"{LEVEL * 100:.0f}\\,\\% CI"


def variants(df: pd.DataFrame) -> pd.DataFrame:
    """One row per arch of the study: k, matching (reference, filters, width or other), the ReLU arch it is compared
    with and the maps leaving each block; ReLU first, then by k and matching."""
    cells = df[(df["study"] == STUDY) & df["task"].isin(["train", "speed"])].drop_duplicates("arch")
    cells = cells.assign(k=[int(p) if a == "maxout" else 1 for a, p in zip(cells["activation"], cells["pieces"])])
    relu = dict(zip(cells.loc[cells["k"] == 1, "width"], cells.loc[cells["k"] == 1, "arch"]))  # first width -> arch
    rows = []
    for r in cells.itertuples():
        if r.k == 1:
            matching, reference = "reference", r.arch
        elif r.width in relu:
            matching, reference = "filters", relu[r.width]
        elif r.width % r.k == 0 and r.width // r.k in relu:
            matching, reference = "width", relu[r.width // r.k]
        else:
            matching, reference = "other", None
        rows.append({"arch": r.arch, "k": r.k, "matching": matching, "reference": reference, "maps": r.maps})
    out = pd.DataFrame(rows, columns=["arch", "k", "matching", "reference", "maps"])
    out["rank"] = out["matching"].map(list(MATCHING).index)
    return out.sort_values(["k", "rank", "arch"]).drop(columns="rank").reset_index(drop=True)


def variant_words(v) -> str:
    if v.k == 1:
        return f"ReLU ({tt(v.arch)})"
    how = f" at {MATCHING[v.matching]}" if v.matching != "other" else ""
    return f"maxout with $k={v.k}${how} ({tt(v.arch)})"


def share(fraction: float) -> str:
    return f"{100 * fraction:g}\\,\\%"


def with_units(frame: pd.DataFrame, df: pd.DataFrame) -> pd.DataFrame:
    many = with_config(df[df["study"] == STUDY])["config"].nunique() > 1
    unit = frame["setup"] + "-" + frame["config"] if many else frame["setup"]
    label = [setup_label(f, e) + (f" ({c})" if many else "")
             for f, e, c in zip(frame["framework"], frame["engine"], frame["config"])]
    return frame.assign(unit=unit, Label=label, Unit=[escape(x) for x in label])


def cells(df: pd.DataFrame, task: str) -> pd.DataFrame:
    return with_config(df[(df["study"] == STUDY) & (df["task"] == task)])


def seed_stats(df: pd.DataFrame) -> pd.DataFrame:
    """Per unit x arch x training fraction: test accuracy and gap (mean, t half-width), seeds, runs that diverged
    (final training loss not finite), the trained network's parameters and the variant."""
    train = cells(df, "train")
    keys = ["setup", "framework", "engine", "config", "arch", "train_fraction"]
    test, gap = (seed_summary(train, m) for m in ("test_accuracy", "gap"))
    if test.empty:
        columns = [*keys, "test", "test_ci", "seeds", "gap", "gap_ci", "diverged", "params", *variants(df).columns[1:]]
        return with_units(pd.DataFrame(columns=columns), df)
    out = test[keys + ["mean", "ci", "seeds"]].rename(columns={"mean": "test", "ci": "test_ci"})
    out = out.merge(gap[keys + ["mean", "ci"]].rename(columns={"mean": "gap", "ci": "gap_ci"}), on=keys, how="left")
    loss = train[(train["status"] == "ok") & (train["metric"] == "train_loss")]
    diverged = loss.assign(diverged=~np.isfinite(loss["value"].astype(float))).groupby(keys)["diverged"].sum()
    out = out.merge(diverged.reset_index(), on=keys, how="left").fillna({"diverged": 0})
    params = train.dropna(subset=["params"]).drop_duplicates("arch").set_index("arch")["params"]
    return with_units(out.assign(params=out["arch"].map(params)).merge(variants(df), on="arch"), df)


def gap_growth(df: pd.DataFrame) -> pd.DataFrame:
    """Per unit x arch: the gap at the smallest training fraction minus the gap at the largest, paired by seed, with
    its mean and t interval over seeds. Empty when the study trained at one fraction."""
    keys = ["setup", "framework", "engine", "config", "arch"]
    columns = [*keys, "change", "change_ci", "seeds", "smallest", "largest"]
    gaps = cells(df, "train")[lambda d: (d["status"] == "ok") & (d["metric"] == "gap")]
    fractions = sorted(gaps["train_fraction"].unique())
    if len(fractions) < 2:
        return with_units(pd.DataFrame(columns=columns), df)
    wide = gaps.pivot_table(index=[*keys, "seed"], columns="train_fraction", values="value")
    growth = (wide[fractions[0]] - wide[fractions[-1]]).dropna()
    rows = [[*k, *t_interval(g), fractions[0], fractions[-1]] for k, g in growth.groupby(level=keys, sort=False)]
    return with_units(pd.DataFrame(rows, columns=columns), df)


def time_ratios(df: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """Forward and backward time of each maxout variant over its ReLU arch's, per unit: the ratio of the medians with
    a percentile bootstrap interval of both cells' raw samples (seeds pooled), as in claim.py."""
    keys = ["setup", "framework", "engine", "config"]
    columns = [*keys, "arch", "reference", "phase", "ratio", "lo", "hi"]
    speed = cells(df, "speed")
    speed = speed[speed["status"] == "ok"].drop_duplicates("cell_id")
    reference = variants(df).set_index("arch")["reference"]
    rows = []
    for unit, group in speed.groupby(keys, sort=False):
        ids = group.groupby("arch")["cell_id"].apply(list)
        for arch in ids.index:
            ref = reference.get(arch)
            if ref == arch or ref not in ids:
                continue
            for phase in PHASES:
                a, b = (samples[(samples["phase"] == phase) & samples["cell_id"].isin(ids[x])]["value"]
                        for x in (arch, ref))
                if len(a) and len(b):
                    rows.append([*unit, arch, ref, phase, *bootstrap_ratio(a, b)])
    return with_units(pd.DataFrame(rows, columns=columns), df)


def pm(mean: float, ci: float) -> str:
    """Percent (or points) as 'mean +- half-width'; the mean alone without an interval."""
    text = percent(mean).replace("-", "$-$")  # a minus sign, not a hyphen
    return text if pd.isna(ci) else f"{text}\\,$\\pm$\\,{percent(ci)}"


def versus(a: tuple[float, float], b: tuple[float, float]) -> str | None:
    """'higher', 'lower' or 'overlap' from two (mean, ci) as printed, so the word never contradicts the digits; None
    without both intervals."""
    if pd.isna(a[1]) or pd.isna(b[1]):
        return None
    (lo_a, hi_a), (lo_b, hi_b) = ((float(percent(m)) - float(percent(c)), float(percent(m)) + float(percent(c)))
                                  for m, c in (a, b))
    return "higher" if lo_a > hi_b else "lower" if hi_a < lo_b else "overlap"


def accuracy_clause(row, ref) -> str:
    where = ("On the whole training split" if row.train_fraction == 1 else
             f"At {share(row.train_fraction)} of the training split")
    numbers = (f"{where} its test accuracy was {pm(row.test, row.test_ci)}\\,\\% against ReLU's "
               f"{pm(ref.test, ref.test_ci)}\\,\\%")
    word = versus((row.test, row.test_ci), (ref.test, ref.test_ci))
    if word is None:
        return f"{numbers} (one seed, so no interval and no verdict)."
    n = f"{row.seeds:.0f} seeds each" if row.seeds == ref.seeds else f"{row.seeds:.0f} and {ref.seeds:.0f} seeds"
    seeds = f"mean\\,$\\pm$\\,{CI}, {n}"
    if word == "overlap":
        return (f"{numbers} ({seeds}): the intervals overlap, so the two are not distinguishable at this number of "
                f"seeds.")
    return f"{numbers} ({seeds}): {word} than ReLU's, the intervals apart."


def growth_clause(row, ref) -> str:
    numbers = (f"From {share(row.largest)} to {share(row.smallest)} of the training split its train/test gap changed "
               f"by {pm(row.change, row.change_ci)} points and ReLU's by {pm(ref.change, ref.change_ci)}")
    word = versus((row.change, row.change_ci), (ref.change, ref.change_ci))
    if word is None:
        return f"{numbers} (one seed, so no verdict on overfitting)."
    if word == "overlap":
        return f"{numbers}: as the data shrank it did not overfit distinguishably more or less than ReLU."
    return f"{numbers}: as the data shrank it overfit {'more' if word == 'higher' else 'less'} than ReLU."


def time_word(lo: float, hi: float) -> str:
    """From the interval as printed: slower or faster only where it excludes 1."""
    lo, hi = float(ratio(lo)), float(ratio(hi))
    return "slower than" if lo > 1 else "faster than" if hi < 1 else "not distinguishable from"


def cost_clause(times: pd.DataFrame, params, saved) -> str:
    parts = [f"{time_word(r.lo, r.hi)} ReLU in the {r.phase} pass ({ratio(r.ratio)}$\\times$ ReLU's time, "
             f"{CI} {ratio(r.lo)}--{ratio(r.hi)})" for r in times.itertuples()]
    extras = [f"{ratio(x)}$\\times$ {what}" for x, what in [(params, "ReLU's parameters"),
                                                             (saved, "the bytes ReLU saves for the backward pass")]
              if x is not None]
    if not parts:
        return f"It has {words(extras)}." if extras else ""
    return f"It was {words(parts)}" + (f", with {words(extras)}" if extras else "") + "."


def ratio_of(values: pd.Series, a: str, b: str):
    return values[a] / values[b] if {a, b} <= set(values.index) and values[b] else None


def verdicts(df: pd.DataFrame, samples: pd.DataFrame) -> dict[str, str]:
    """Per unit and maxout variant, against its ReLU arch: accuracy, overfitting, time, parameters and memory."""
    stats, growth, times = seed_stats(df), gap_growth(df), time_ratios(df, samples)
    full = stats[stats["train_fraction"] == stats["train_fraction"].max()]
    saved = with_units(summarise(cells(df, "speed"), "saved_bytes"), df)
    speed_params = cells(df, "speed").dropna(subset=["params"]).drop_duplicates("arch").set_index("arch")["params"]
    params = stats.drop_duplicates("arch").set_index("arch")["params"].dropna().combine_first(speed_params)
    names = dict(zip(pd.concat([stats["unit"], times["unit"]]), pd.concat([stats["Unit"], times["Unit"]])))
    values, items = {}, []
    for unit in sorted(names, key=setup_rank):
        for v in variants(df).itertuples():
            if v.k == 1 or v.reference is None:
                continue
            key, text = f"{STUDY}/{unit}/{v.arch}", []
            acc = full[full["unit"] == unit].set_index("arch")
            if {v.arch, v.reference} <= set(acc.index):
                text.append(accuracy_clause(acc.loc[v.arch], acc.loc[v.reference]))
            gap = growth[growth["unit"] == unit].set_index("arch")
            if {v.arch, v.reference} <= set(gap.index):
                text.append(growth_clause(gap.loc[v.arch], gap.loc[v.reference]))
            t = times[(times["unit"] == unit) & (times["arch"] == v.arch)]
            memory = ratio_of(saved[saved["unit"] == unit].set_index("arch")["value"], v.arch, v.reference)
            p = ratio_of(params, v.arch, v.reference)
            if not text and t.empty:
                continue  # this unit measured the variant or its ReLU arch not at all
            text.append(cost_clause(t, p, memory))
            diverged = stats[(stats["unit"] == unit) & (stats["arch"] == v.arch)]
            if diverged["diverged"].sum():
                text.append(f"{int(diverged['diverged'].sum())} of its {int(diverged['seeds'].sum())} training runs "
                            f"diverged (final training loss not finite).")
            for name, x in [("params-ratio", p), ("saved-ratio", memory)]:
                if x is not None:
                    values[f"{key}-over-{v.reference}/{name}"] = ratio(x)
            sentence = f"\\textbf{{{names[unit]}, {variant_words(v)}.}} " + " ".join(x for x in text if x)
            values[f"{key}-vs-{v.reference}/verdict"] = sentence
            items.append(sentence)
    values[f"{STUDY}/verdicts"] = ("\\begin{itemize}\n" + "".join(f"\\item {x}\n" for x in items) + "\\end{itemize}"
                                   if items else f"The {tt(STUDY)} study has no maxout variant measured against ReLU "
                                                 f"in this run.")
    return values | number_values(stats, growth, times)


def number_values(stats: pd.DataFrame, growth: pd.DataFrame, times: pd.DataFrame) -> dict[str, str]:
    values, largest = {}, stats["train_fraction"].max()
    for r in stats.itertuples():
        base = f"{STUDY}/{r.unit}/{r.arch}"
        values[f"{base}/gap-f{100 * r.train_fraction:g}"] = percent(r.gap)
        if pd.notna(r.gap_ci):
            values[f"{base}/gap-f{100 * r.train_fraction:g}-ci"] = percent(r.gap_ci)
        if r.train_fraction == largest:
            values |= {f"{base}/test-accuracy-mean": percent(r.test), f"{base}/seeds": str(int(r.seeds))}
            if pd.notna(r.test_ci):
                values[f"{base}/test-accuracy-ci"] = percent(r.test_ci)
    for r in growth.itertuples():
        values[f"{STUDY}/{r.unit}/{r.arch}/gap-change"] = percent(r.change)
        if pd.notna(r.change_ci):
            values[f"{STUDY}/{r.unit}/{r.arch}/gap-change-ci"] = percent(r.change_ci)
    for r in times.itertuples():
        base = f"{STUDY}/{r.unit}/{r.arch}-over-{r.reference}/{r.phase}-ratio"
        values |= {base: ratio(r.ratio), f"{base}-lo": ratio(r.lo), f"{base}-hi": ratio(r.hi)}
    return values


def seeds_text(n) -> str:
    lo, hi = int(min(n)), int(max(n))
    return str(lo) if lo == hi else f"{lo} to {hi}"


def diverged_runs(stats: pd.DataFrame) -> str:
    """'maxout2-eqwidth in PyTorch eager (3 of 6 runs)' for every unit x arch with diverged runs."""
    runs = stats.groupby(["unit", "Unit", "arch"], sort=False)[["diverged", "seeds"]].sum().reset_index()
    runs = runs[runs["diverged"] > 0]
    return words(f"{tt(r.arch)} in {r.Unit} ({int(r.diverged)} of {int(r.seeds)} runs)" for r in runs.itertuples())


def memory_note(df: pd.DataFrame) -> str:
    speed = with_units(cells(df, "speed")[lambda d: d["status"] == "ok"], df)
    names = dict(zip(speed["unit"], speed["Unit"]))
    lacking = {m: [u for u in sorted(names, key=setup_rank) if u not in set(speed.loc[speed["metric"] == m, "unit"])]
               for m in ("saved_bytes", "peak_bytes")}
    saved, peak = lacking["saved_bytes"], lacking["peak_bytes"]
    if not names:
        return ""
    if len(saved) == len(names):
        text = ["No cell recorded the bytes kept for the backward pass."]
    else:  # TensorFlow has no hook on the tensors its tape keeps
        why = ", which has no such hook" if all(u.startswith("tensorflow-") for u in saved) else ""
        text = ["Saved: the bytes the forward pass keeps for the backward pass, counted through saved-tensor hooks, in "
                "MiB" + (f"; a dash in {words(names[u] for u in saved)}{why}" if saved else "") + "."]
    text.append("Peak memory is recorded on GPUs only; no cell of this run recorded it." if len(peak) == len(names) else
                "Peak: the device's peak memory in a training step, in MiB" + ("; a dash where not recorded" if peak
                                                                              else "") + ".")
    return " ".join(text)


def study_values(df: pd.DataFrame) -> dict[str, str]:
    v = variants(df)
    values = {f"{STUDY}/level": f"{LEVEL * 100:.0f}"}
    if v.empty:
        none = f"This run has no {tt(STUDY)} study, so it does not compare maxout with ReLU."
        return values | {f"{STUDY}/{k}": none for k in ("scope", "intro", "seeds-sentence")} | {
            f"{STUDY}/mfm": "this run has no such variant", f"{STUDY}/memory-note": "",
            f"{STUDY}/diverged-sentence": "", f"{STUDY}/fractions": "(none)"}
    study = df[df["study"] == STUDY]
    setups = words(escape(setup_label(*s.split("-", 1))) for s in sorted(set(study["setup"]), key=setup_rank))
    text = f"The {tt(STUDY)} study compares {words(variant_words(r) for r in v.itertuples())} in {setups}."
    stats = seed_stats(df)
    if len(stats):
        trained = cells(df, "train")[lambda d: d["metric"] == "test_accuracy"]
        sizes = trained.groupby("train_fraction")["train_size"].median()
        fractions = words(share(f) for f in sizes.index)
        values[f"{STUDY}/fractions"] = fractions
        images = words(f"{s:.0f}" for s in sizes) + " images" if sizes.notna().all() else ""
        seeds = seeds_text(stats["seeds"])
        text += (f" It trains each on {fractions} of the training split" + (f" ({images})" if images else "")
                 + f", with {seeds} seed{'s' if seeds != '1' else ''} per variant, setup and fraction.")
        n = int(stats["seeds"].min())
        values[f"{STUDY}/seeds-sentence"] = (
            f"The {tt(STUDY)} study trained {seeds} seed{'s' if seeds != '1' else ''} per variant, setup and "
            + (f"fraction; with {n} seeds a {LEVEL * 100:.0f}\\,\\% t interval reaches "
               f"{t_quantile(n, LEVEL):.2f} standard errors to each side of the mean, so intervals are wide and "
               f"``not distinguishable'' may mean too few seeds rather than no difference."
               if n > 1 else "fraction, so some of its means have no interval and no verdict."))
        runs = diverged_runs(stats)
        values[f"{STUDY}/diverged-sentence"] = (
            f"Some training runs diverged, their final training loss not finite: {runs}. They stay in the means with "
            f"the accuracy they ended at." if runs else f"No training run of the {tt(STUDY)} study diverged.")
    else:
        values |= {f"{STUDY}/fractions": "(none)", f"{STUDY}/diverged-sentence": "",
                   f"{STUDY}/seeds-sentence": f"The {tt(STUDY)} study trained no network in this run."}
    if (study["task"] == "speed").any():
        text += " It also times a training step of each variant."
    values |= {f"{STUDY}/scope": text, f"{STUDY}/memory-note": memory_note(df),
               f"{STUDY}/intro": text + " Section~\\ref{sec:activation} gives its verdicts, with intervals.",
               f"{STUDY}/mfm": (f"in this run that is {words(tt(a) for a in v.loc[v['k'] == 2, 'arch'])}"
                                if (v["k"] == 2).any() else "this run has no variant with two pieces")}
    return values


def activation_values(df: pd.DataFrame, samples: pd.DataFrame) -> dict[str, str]:
    return study_values(df) | verdicts(df, samples)


def mib(x) -> str:
    return sig3(x / MIB) if pd.notna(x) else "--"


def cost_table(df: pd.DataFrame) -> str:
    caption = ("Cost of the variants of the activation study, per setup: $k$ (maxout pieces; ReLU: 1), how a variant "
               "matches ReLU, parameters and forward MFLOPs per example of the timed network, the maps leaving each "
               "block, the median forward and backward time of a training step in ms (interquartile range), and "
               "memory.")
    rows = cells(df, "speed")
    if rows.empty:
        return placeholder(caption, "tab:activation-cost", "This run timed no cell of the activation study.")
    speed = with_units(rows.drop_duplicates("cell_id"), df)
    times = with_units(summarise(rows, "time"), df)
    memory = {m: with_units(summarise(rows, m), df) for m in ("saved_bytes", "peak_bytes")}
    rows, groups = [], []
    for unit in sorted(set(speed["unit"]), key=setup_rank):
        for v in variants(df).itertuples():
            cell = speed[(speed["unit"] == unit) & (speed["arch"] == v.arch)]
            if cell.empty:
                continue
            c = cell.iloc[0]
            row = {"Variant": tt(v.arch), "k": str(v.k), "Matching": MATCHING[v.matching],
                   "Params": thousands(c.params), "MFLOPs": sig3(c.flops / 1e6) if pd.notna(c.flops) else "--",
                   "Maps": v.maps}
            for phase, column in [("forward", "Fwd"), ("backward", "Bwd")]:
                t = times[(times["unit"] == unit) & (times["arch"] == v.arch) & (times["phase"] == phase)]
                row[column] = flagged(ms(t["value"].iloc[0], t["iqr"].iloc[0]), t["noisy"].iloc[0]) if len(t) else (
                    r"\emph{failed}" if (cell["status"] == "failed").all() else "--")
            for metric, column in [("saved_bytes", "Saved"), ("peak_bytes", "Peak")]:
                m = memory[metric]
                row[column] = mib(m.loc[(m["unit"] == unit) & (m["arch"] == v.arch), "value"].max())
            rows.append(row)
            groups.append(c.Unit)
    table = pd.DataFrame(rows)
    if (table["Peak"] == "--").all():
        table = table.drop(columns="Peak")
    note = " ".join(x for x in [memory_note(df), noisy_note(times[times["phase"].isin(PHASES)])] if x)
    return booktabs(table, caption, "tab:activation-cost", "lrlrrlrr" + "r" * (len(table.columns) - 8),
                    raw=("Variant", "Fwd", "Bwd"), size=r"\footnotesize", groups=pd.Series(groups), note=note)


def accuracy_table(df: pd.DataFrame) -> str:
    stats, growth = seed_stats(df), gap_growth(df)
    caption = (f"Test accuracy at the largest training fraction, in percent, and the train/test gap (train minus test "
               f"accuracy, in points) at each fraction of the training split, per setup: mean\\,$\\pm$\\,half-width "
               f"of the {CI.replace('CI', 't interval')} over seeds. Change: the gap at the smallest fraction minus "
               f"the gap at the largest, seed by seed.")
    if stats.empty:
        return placeholder(caption, "tab:activation-accuracy", "This run trained no network of the activation study.")
    fractions = sorted(stats["train_fraction"].unique())
    gap = "Train/test gap (points)"
    rows, groups = [], []
    for unit in sorted(set(stats["unit"]), key=setup_rank):
        for v in variants(df).itertuples():
            s = stats[(stats["unit"] == unit) & (stats["arch"] == v.arch)].set_index("train_fraction")
            if s.empty:
                continue
            row = {("", "Variant"): tt(v.arch), ("", "Seeds"): seeds_text(s["seeds"])}
            full = s.loc[fractions[-1]] if fractions[-1] in s.index else None
            row[("Test (%)", f"{100 * fractions[-1]:g}%")] = pm(full.test, full.test_ci) if full is not None else "--"
            for f in fractions:
                row[(gap, f"{100 * f:g}%")] = pm(s.loc[f, "gap"], s.loc[f, "gap_ci"]) if f in s.index else "--"
            if len(fractions) > 1:
                g = growth[(growth["unit"] == unit) & (growth["arch"] == v.arch)]
                row[(gap, "change")] = pm(g["change"].iloc[0], g["change_ci"].iloc[0]) if len(g) else "--"
            rows.append(row)
            groups.append(s["Unit"].iloc[0])
    table = pd.DataFrame(rows)
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    notes = []
    if (stats["seeds"] == 1).any():
        notes.append("A mean over one seed has no interval and is shown alone.")
    if diverged_runs(stats):
        notes.append(f"Diverged runs (final training loss not finite) count with the accuracy they ended at: "
                     f"{diverged_runs(stats)}.")
    return booktabs(table, caption, "tab:activation-accuracy", "lr" + "r" * (len(table.columns) - 2),
                    raw=tuple(table.columns), size=r"\footnotesize", groups=pd.Series(groups),
                    note=" ".join(notes) or None)

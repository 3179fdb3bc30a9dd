"""Each maxout variant against its ReLU network, per unit, as Verdicts: test accuracy and the gap's growth (mean of the
per-seed differences with its t interval, Holm-corrected over the study's accuracy and gap verdicts; the gap over
the seeds where every run converged) and forward and backward time (ratio of medians with a bootstrap interval);
and the values the paper quotes: per-cell numbers, and counts and ranges over the verdicts for the text, which must
read true for any config."""
from __future__ import annotations

import pandas as pd

from convbench.analysis.activation import data
from convbench.analysis.activation.data import STUDY
from convbench.analysis.formatting import (
    detectable_values,
    escape,
    flag,
    percent,
    ratio,
    setup_label,
    seeds_phrase,
    setup_rank,
    span,
    tally,
    tally_of,
    tt,
    words,
)
from convbench.analysis.query import accuracy_values, convergence, launch_count, time_values
from convbench.analysis.stats import LEVEL, Outcome, Paired, Verdict, paired_verdicts, t_quantile, time_verdict
from convbench.analysis.study import Run

SCALES = {"test-accuracy-diff": "accuracy", "gap-change-diff": "overfit"}  # the words table's row of each quantity
EQUAL = {Outcome.EQUIVALENT: "equivalent", Outcome.UNDECIDED: "undecided"}
SPEED = {Outcome.SLOWER: "slower", Outcome.FASTER: "faster", **EQUAL}
# The counts the text quotes: <study>/<name>-<slug>, how many verdicts on a quantity (key suffix) had each outcome.
KINDS = {"accuracy": ("test-accuracy-diff", {Outcome.HIGHER: "higher", Outcome.LOWER: "lower", **EQUAL}),
         "overfit": ("gap-change-diff", {Outcome.HIGHER: "more", Outcome.LOWER: "less", **EQUAL}),
         "forward": ("forward-ratio", SPEED), "backward": ("backward-ratio", SPEED)}
# The same counts as the text's phrases (formatting.tally: the outcomes that occurred only)
TALLIES = {"accuracy": {Outcome.HIGHER: "higher", Outcome.LOWER: "lower", Outcome.EQUIVALENT: "equivalent",
                        Outcome.UNDECIDED: "undecided"},
           "overfit": {Outcome.HIGHER: "grew more than ReLU's", Outcome.LOWER: "grew less than ReLU's",
                       Outcome.EQUIVALENT: "grew as ReLU's did, within the margin,",
                       Outcome.UNDECIDED: "was undecided"},
           "gaps": {Outcome.HIGHER: "larger than ReLU's", Outcome.LOWER: "smaller than ReLU's",
                    Outcome.EQUIVALENT: "equivalent", Outcome.UNDECIDED: "undecided"},
           **dict.fromkeys(("forward", "backward"), {Outcome.SLOWER: "slower", Outcome.FASTER: "faster",
                                                     Outcome.EQUIVALENT: "as fast within the margin",
                                                     Outcome.UNDECIDED: "undecided"})}


def accuracy_family(df: pd.DataFrame) -> list[Paired]:
    """The study's Holm family: per unit and maxout variant, test accuracy at the largest fraction and the gap's
    change from the largest to the smallest fraction, against its ReLU arch (a comparison with fewer than two pairs
    counts in the family, without a verdict)."""
    family = []
    for unit in sorted(set(data.seed_stats(df)["unit"]), key=setup_rank):
        for v in data.compared(df).itertuples():
            base = f"{STUDY}/{unit}/{v.arch}-vs-{v.reference}"
            test, growth, _ = data.seed_diffs(df, unit, v.arch, v.reference)
            family += [Paired(f"{base}/{suffix}", v.arch, v.reference, quantity, diffs, SCALES[suffix])
                       for suffix, quantity, diffs in [("test-accuracy-diff", "test accuracy", test),
                                                       ("gap-change-diff", "growth of the train/test gap", growth)]
                       if diffs]
    return family


def family_phrase(family: list[Paired]) -> str:
    """The Holm family as the caption and text name it: 'the study's 2 test-accuracy comparisons', or of test
    accuracy and gap growth with the count of each."""
    n = {s: sum(c.key.endswith(f"/{s}") for c in family) for s in SCALES}
    if not family:
        return "the study's test-accuracy comparisons (none in this run)"
    single = sum(len(c.diffs) < 2 for c in family)  # counted in Holm's m, without an interval of their own
    aside = f" ({single} of them on one seed pair: counted, without an interval)" if single else ""
    if not n["gap-change-diff"]:
        return f"the study's {n['test-accuracy-diff']} test-accuracy comparisons{aside}"
    return (f"the study's {len(family)} comparisons of test accuracy ({n['test-accuracy-diff']}) and gap growth "
            f"({n['gap-change-diff']}){aside}")


def verdicts(run: Run) -> list[Verdict]:
    """Per unit and maxout variant, against its ReLU arch: test accuracy at the largest fraction, the gap's change
    from the largest to the smallest fraction (one Holm family, accuracy_family), and forward and backward time."""
    df = run.tidy
    if not data.ran(run):
        return []
    stats, times = data.seed_stats(df), data.time_ratios(df, run.samples)
    out = []
    for unit in sorted(set(stats["unit"]) | set(times["unit"]), key=setup_rank):
        for v in data.compared(df).itertuples():
            for r in times[(times["unit"] == unit) & (times["arch"] == v.arch)].itertuples():
                out.append(time_verdict(f"{STUDY}/{unit}/{v.arch}-over-{v.reference}/{r.phase}-ratio", v.arch,
                                        v.reference, f"{r.phase} time", r.ratio, r.lo, r.hi, r.kind, run.margins))
    paired = paired_verdicts(accuracy_family(df), run.margins)
    return paired + headlines(paired, df) + gap_verdicts(run) + out


def fraction_key(fraction: float) -> str:
    return f"gap-diff-f{100 * fraction:g}"  # gap-diff-f25: at 25 % of the training split


def gap_verdicts(run: Run) -> list[Verdict]:
    """Per unit, maxout variant and training fraction: the train/test gap, maxout minus ReLU, paired by seed (the
    seeds where both converged), decided against the accuracy margin; Holm over these comparisons, a family of their
    own (the overfitting question at each training-set size)."""
    df = run.tidy
    family = []
    for unit in sorted(set(data.seed_stats(df)["unit"]), key=setup_rank):
        for v in data.compared(df).itertuples():
            for fraction, diffs in data.gap_diffs(df, unit, v.arch, v.reference).items():
                family.append(Paired(f"{STUDY}/{unit}/{v.arch}-vs-{v.reference}/{fraction_key(fraction)}", v.arch,
                                     v.reference, f"train/test gap at {100 * fraction:g} % of the training split",
                                     diffs, "gap"))
    return paired_verdicts(family, run.margins)


def headlines(paired: list[Verdict], df: pd.DataFrame) -> list[Verdict]:
    """Per matching (filters, width, params), the verdicts of its fewest-pieces variant in the first unit again,
    under activation/<matching>/test-accuracy-diff and gap-change-diff: what the abstract and conclusions quote."""
    if not paired:
        return []
    first = min({v.key.split("/")[1] for v in paired}, key=setup_rank)
    out = []
    for m, group in data.compared(df).groupby("matching", sort=False):
        arch = group.sort_values(["k", "arch"])["arch"].iloc[0]
        for v in paired:
            if v.key.split("/")[1] == first and v.subject == arch:
                out.append(v.renamed(f"{STUDY}/{m}/{v.key.rsplit('/', 1)[1]}"))
    return out


def convergence_values(run: Run) -> dict[str, str]:
    """How many replicate runs did not converge (stopped at the epoch cap, or at chance), and per compared variant and unit how many of the seeds
    of its accuracy comparison converged in both networks."""
    df = run.tidy
    c = convergence(data.cells(df, "train")) if len(df) else convergence(df)
    stopped, chance = int((c["converged"] == 0).sum()), int((c["at_chance"] == 1).sum())
    values = {f"{STUDY}/unconverged": str(stopped), f"{STUDY}/any-unconverged": flag(stopped),
              f"{STUDY}/at-chance": str(chance), f"{STUDY}/any-at-chance": flag(chance),
              f"{STUDY}/converged": str(int((c["converged"] == 1).sum())), f"{STUDY}/train-runs": str(len(c))}
    values |= {f"{STUDY}/{m}/{k}": "--" for m in data.MATCHING for k in ("arch", "archs", "converged")}
    if not data.ran(run):
        return values
    units = set(data.seed_stats(df)["unit"])
    for unit in units:
        for v in data.compared(df).itertuples():
            test, _, both = data.seed_diffs(df, unit, v.arch, v.reference)
            if test:
                values[f"{STUDY}/{unit}/{v.arch}-vs-{v.reference}/converged"] = str(both)
    for m in data.MATCHING:
        arch = data.compared(df).query("matching == @m").sort_values(["k", "arch"])["arch"]
        first = sorted(units, key=setup_rank)[:1]
        if len(arch) and first:
            ref = data.variants(df).set_index("arch").loc[arch.iloc[0], "reference"]
            values[f"{STUDY}/{m}/converged"] = values.get(f"{STUDY}/{first[0]}/{arch.iloc[0]}-vs-{ref}/converged", "0")
            values[f"{STUDY}/{m}/arch"] = tt(arch.iloc[0])  # the headline's: fewest pieces
            values[f"{STUDY}/{m}/archs"] = words(tt(a) for a in arch)
    return values


def ratio_of(values: pd.Series, a: str, b: str):
    return values[a] / values[b] if {a, b} <= set(values.index) and values[b] else None


def cost_ratios(run: Run) -> pd.DataFrame:
    """Per unit and compared variant that was trained or timed against its ReLU arch: parameters and the bytes kept
    for the backward pass over ReLU's (None where not measured)."""
    df = run.tidy
    stats, times = data.seed_stats(df), data.time_ratios(df, run.samples)
    full = stats[stats["train_fraction"] == stats["train_fraction"].max()]
    saved = data.memory(df, "saved_bytes")
    rows = []
    for unit in sorted(set(stats["unit"]) | set(times["unit"]), key=setup_rank):
        params = data.params(df, unit)
        for v in data.compared(df).itertuples():
            pair = {v.arch, v.reference}
            if not (pair <= set(full.loc[full["unit"] == unit, "arch"]) or len(times[(times["unit"] == unit)
                                                                                     & (times["arch"] == v.arch)])):
                continue  # this unit measured the variant or its ReLU arch not at all
            rows.append({"unit": unit, "arch": v.arch, "reference": v.reference, "matching": v.matching,
                         "params": ratio_of(params, v.arch, v.reference),
                         "saved": ratio_of(saved[saved["unit"] == unit].set_index("arch")["value"], v.arch,
                                           v.reference)})
    return pd.DataFrame(rows, columns=["unit", "arch", "reference", "matching", "params", "saved"])


def number_values(run: Run) -> dict[str, str]:
    """Per unit and arch: test accuracy (mean, ci, seeds) at the largest fraction, the gap at each fraction and its
    change; per compared variant its parameter and memory ratios; per cell the medians of times and accuracies."""
    df = run.tidy
    stats, growth = data.seed_stats(df), data.gap_growth(df)
    values, largest = {}, stats["train_fraction"].max()
    for r in stats.itertuples():
        base = f"{STUDY}/{r.unit}/{r.arch}"
        if pd.notna(r.gap):
            values[f"{base}/gap-f{100 * r.train_fraction:g}"] = percent(r.gap)
        if pd.notna(r.gap_ci):
            values[f"{base}/gap-f{100 * r.train_fraction:g}-ci"] = percent(r.gap_ci)
        if r.train_fraction == largest and pd.notna(r.test):
            values |= {f"{base}/test-accuracy-mean": percent(r.test), f"{base}/seeds": str(int(r.seeds))}
            if pd.notna(r.test_ci):
                values[f"{base}/test-accuracy-ci"] = percent(r.test_ci)
    for r in growth.itertuples():
        values[f"{STUDY}/{r.unit}/{r.arch}/gap-change"] = percent(r.change)
        if pd.notna(r.change_ci):
            values[f"{STUDY}/{r.unit}/{r.arch}/gap-change-ci"] = percent(r.change_ci)
    for r in cost_ratios(run).itertuples():
        for name, x in [("params-ratio", r.params), ("saved-ratio", r.saved)]:
            if x is not None and pd.notna(x):
                values[f"{STUDY}/{r.unit}/{r.arch}-over-{r.reference}/{name}"] = ratio(x)
    study = df[df["study"] == STUDY] if len(df) else df
    return values | time_values(study) | accuracy_values(study)



def seeds_text(n) -> str:
    lo, hi = int(min(n)), int(max(n))
    return str(lo) if lo == hi else f"{lo} to {hi}"


def share(fraction: float) -> str:
    return f"{100 * fraction:g}\\,\\%"


def training_text(trained: pd.DataFrame) -> str:
    """What each data set trained on: 'mnist5k at 25 %, 50 % and 100 % of its training split (1000, 2000 and
    4000 images) and planted (4000 images)'; a data set trained whole says only its size."""
    parts = []
    for dataset, cells in trained.groupby("dataset"):
        sizes = cells.groupby("train_fraction")["train_size"].median()
        images = words(f"{s:.0f}" for s in sizes) if sizes.notna().all() else "--"
        whole = list(sizes.index) == [1.0]
        parts.append(f"{tt(dataset)} ({images} images)" if whole else
                     f"{tt(dataset)} at {words(share(f) for f in sizes.index)} of its training split ({images} images)")
    return words(parts)


def scope_values(run: Run) -> dict[str, str]:
    """What the study holds: variants, setups, fractions, training-set sizes, seeds, diverged runs; flags."""
    df, v = run.tidy, data.variants(run.tidy) if len(run.tidy) else pd.DataFrame(columns=["arch", "k"])
    study = df[df["study"] == STUDY] if len(df) else df
    k2 = v.loc[v["k"] == 2, "arch"]
    values = {f"{STUDY}/level": f"{LEVEL * 100:.0f}", f"{STUDY}/trained": flag(data.trained(run)),
              f"{STUDY}/timed": flag(len(study) and (study["task"] == "speed").any()),
              f"{STUDY}/variants": str(len(v)), f"{STUDY}/maxout-variants": str(int((v["k"] > 1).sum())),
              f"{STUDY}/pieces": words(str(k) for k in sorted(set(v["k"]) - {1})),
              f"{STUDY}/has-mfm": flag(len(k2)), f"{STUDY}/mfm": words(tt(a) for a in k2),
              f"{STUDY}/setups": words(escape(setup_label(*s.split("-", 1)))
                                       for s in sorted(set(study["setup"]), key=setup_rank)) if len(study) else ""}
    stats = data.seed_stats(df) if len(df) else pd.DataFrame()
    if len(stats):
        trained = data.cells(df, "train")[lambda d: d["metric"] == "test_accuracy"]
        sizes = trained.groupby("train_fraction")["train_size"].median()
        n = int(stats["trained"].min())
        values |= {f"{STUDY}/fractions": words(share(f) for f in sizes.index),
                   f"{STUDY}/fraction-smallest": f"{100 * sizes.index.min():g}",
                   f"{STUDY}/fraction-largest": f"{100 * sizes.index.max():g}",
                   f"{STUDY}/training": training_text(trained),
                   f"{STUDY}/seeds-per": words(["variant"] + ["data set"] * (trained["dataset"].nunique() > 1)
                                               + ["fraction"] * (trained["train_fraction"].nunique() > 1)),
                   f"{STUDY}/seeds": seeds_text(stats["trained"]), f"{STUDY}/seeds-min": str(n),
                   f"{STUDY}/seeds-text": seeds_phrase(stats["trained"]),
                   f"{STUDY}/intervals": flag(n > 1),
                   f"{STUDY}/t-quantile": f"{t_quantile(n, LEVEL):.2f}" if n > 1 else "--",
                   f"{STUDY}/grew": flag(stats["train_fraction"].nunique() > 1),
                   f"{STUDY}/runs": str(int(stats["trained"].sum())),
                   f"{STUDY}/diverged": str(int(stats["diverged"].sum())),
                   f"{STUDY}/any-diverged": flag(stats["diverged"].sum() > 0)}
    else:
        values |= {f"{STUDY}/{k}": "--" for k in ("fractions", "fraction-smallest", "fraction-largest", "training",
                                                  "seeds", "seeds-min", "t-quantile", "runs", "diverged",
                                                  "seeds-text", "seeds-per")}
        values |= {f"{STUDY}/{k}": "0" for k in ("intervals", "grew", "any-diverged")}
    return values


def headline_setup(run: Run, found: list[Verdict]) -> str:
    """The setup (and data set) whose verdicts the headlines repeat (headlines: the first unit), as the tables label
    it: 'PyTorch eager, mnist5k'."""
    units = {v.key.split("/")[1] for v in found if v.key.count("/") == 3 and v.unit == "points"}  # as headlines
    if not units or not data.ran(run):
        return "--"
    stats = data.seed_stats(run.tidy)
    first = min(units, key=setup_rank)
    return escape(dict(zip(stats["unit"], stats["Label"])).get(first, first))


def summary_values(run: Run, found: list[Verdict]) -> dict[str, str]:
    """Over all verdicts, for text that holds for any config: how many comparisons of each quantity came out which
    way; per matching (equal filters, equal width) the range of the time and parameter ratios."""
    values = {f"{STUDY}/compared": flag(found), f"{STUDY}/headline-setup": headline_setup(run, found)}
    for name, (suffix, slugs) in KINDS.items():
        these = [v for v in found if v.key.endswith(f"/{suffix}") and v.key.count("/") == 3]  # not the headlines
        values[f"{STUDY}/{name}-compared"] = str(len(these))
        if name == "accuracy":
            values |= detectable_values(STUDY, these)
            values[f"{STUDY}/accuracy-decided"] = flag(any(v.outcome.decided for v in these))
            values[f"{STUDY}/accuracy-differs"] = flag(any(v.outcome in (Outcome.HIGHER, Outcome.LOWER) for v in these))
        for outcome, slug in slugs.items():
            values[f"{STUDY}/{name}-{slug}"] = str(sum(v.outcome is outcome for v in these))
        if name in TALLIES:
            values[f"{STUDY}/{name}-tally"] = tally((v.outcome for v in these), TALLIES[name])
            values[f"{STUDY}/{name}-tally-of"] = tally_of((v.outcome for v in these), TALLIES[name])
    gaps = [v for v in found if "/gap-diff-f" in v.key]
    values[f"{STUDY}/gaps-compared"], values[f"{STUDY}/gaps-any"] = str(len(gaps)), flag(gaps)
    for outcome, slug in KINDS["overfit"][1].items():
        values[f"{STUDY}/gaps-{slug}"] = str(sum(v.outcome is outcome for v in gaps))
    values[f"{STUDY}/gaps-tally"] = tally((v.outcome for v in gaps), TALLIES["gaps"])
    values[f"{STUDY}/gaps-tally-of"] = tally_of((v.outcome for v in gaps), TALLIES["gaps"])
    variants = data.variants(run.tidy) if len(run.tidy) else pd.DataFrame(columns=["arch", "matching", "k"])
    matching, pieces = (dict(zip(variants["arch"], variants[c])) for c in ("matching", "k"))
    costs = cost_ratios(run) if len(run.tidy) else pd.DataFrame(columns=["matching", "params", "saved"])
    for m in ("filters", "width", "params"):
        values[f"{STUDY}/{m}/accuracy"] = flag(f"{STUDY}/{m}/test-accuracy-diff" in {v.key for v in found})
        values[f"{STUDY}/{m}/overfit"] = flag(f"{STUDY}/{m}/gap-change-diff" in {v.key for v in found})
        timed = [v for v in found if v.unit == "ratio" and matching.get(v.subject) == m]
        values[f"{STUDY}/{m}-timed"] = flag(timed)
        over = [name for name, n in (("setups", len({v.key.split("/")[1] for v in timed})),
                                      ("$k$", len({pieces.get(v.subject) for v in timed}))) if n > 1]
        values[f"{STUDY}/{m}/lead"] = f"Over {' and '.join(over)}, at" if over else "At"  # only what varies
        for phase in data.PHASES:
            values[f"{STUDY}/{m}/{phase}-ratio"] = span(v.estimate for v in timed if v.key.endswith(f"/{phase}-ratio"))
        rows = costs[costs["matching"] == m]
        values[f"{STUDY}/{m}/params-ratio"] = span(rows["params"].dropna().astype(float))
        values[f"{STUDY}/{m}/saved-ratio"] = span(rows["saved"].dropna().astype(float))
        values[f"{STUDY}/{m}-saved"] = flag(rows["saved"].notna().any())
    return values


def values(run: Run) -> dict[str, str]:
    found = verdicts(run)
    out = scope_values(run) | summary_values(run, found) | convergence_values(run)
    out[f"{STUDY}/by-launch"] = "1" if launch_count(run.study(STUDY)) > 1 else "0"
    out[f"{STUDY}/holm-family"] = family_phrase(accuracy_family(run.tidy)) if data.ran(run) else "--"
    return out | (number_values(run) if data.ran(run) else {})


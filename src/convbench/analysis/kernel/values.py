"""The kernel study's numbers: each network's times and accuracies, one k x k convolution against the stack of 3x3
convolutions with the same receptive field. (Converged runs, the cross-framework repeat and the frameworks in eager
mode are the run's, over every study: overview/runs.py.)

Keys (<setup> is framework-engine, with the config appended where the study's task ran in several; see slugs):
  kernel/<setup>/<arch>/<phase>-ms, <phase>-iqr-ms          median time of a phase and its IQR, ms
  kernel/<setup>/<arch>/test-accuracy, train-accuracy, gap  median over seeds, percent (gap: points)
  kernel/<setup>/<a>-over-<b>/<phase>-ratio                 Verdict: time of a over b, -lo/-hi, -word, -kind
  kernel/<setup>/<a>-over-<b>/params-ratio                  parameters of a over b
  kernel/<setup>/<a>-vs-<b>/test-accuracy-diff, gap-diff    Verdict: a minus b, points, paired by seed (replicate
                                                            cells; the gap only over seeds where both converged),
                                                            Holm-corrected over the study's accuracy and gap verdicts
  kernel/stack/...                                          every pair and setup at once: what the text quotes
  kernel/stack/accuracy-lowest, -highest                    Verdict: the pairs of lowest and highest difference
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from convbench.analysis.formatting import (
    beside,
    detectable_values,
    flag,
    percent,
    ratio,
    seeds_phrase,
    setup_label,
    setup_rank,
    signed,
    span,
    X,
    tally,
    tally_of,
    words,
)
from convbench.analysis.query import (
    SUMMARY_KEYS,
    accuracy_values,
    converged_pairs,
    full_data,
    launch_count,
    launch_medians,
    per_seed,
    replicates,
    slugs,
    summarise,
    time_values,
)
from convbench.analysis.stats import (
    LEVEL,
    MARGINS,
    Kind,
    Margins,
    Outcome,
    Paired,
    Verdict,
    launch_ratio,
    paired_verdicts,
    time_ratio,
    time_verdict,
)
from convbench.analysis.study import Run

STUDY = "kernel"
TIME_PHASES = ["forward", "backward", "optimizer", "total", "step"]
ACCURACY = ["test_accuracy", "train_accuracy", "gap"]


# what a summary of no cells has (a run without any cell of the study)
NOTHING = pd.DataFrame(columns=[*SUMMARY_KEYS, "phase", "value", "iqr", "seeds", "noisy", "kernel", "depth",
                                "receptive_field", "params", "slug"])
# the words of the accuracy and gap comparisons' outcomes, as the text counts them (formatting.tally)
ACCURACY_WORDS = {Outcome.HIGHER: "higher", Outcome.LOWER: "lower", Outcome.EQUIVALENT: "equivalent",
                  Outcome.UNDECIDED: "undecided"}
GAP_WORDS = {Outcome.HIGHER: "had a larger train/test gap", Outcome.LOWER: "had a smaller gap",
             Outcome.EQUIVALENT: "had an equivalent gap", Outcome.UNDECIDED: "was undecided"}


def summary(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """query.summarise with each row's key part (slug); NOTHING where the study has no cell of that metric."""
    found = summarise(df, metric) if len(df) else NOTHING
    return found.assign(slug=slugs(found)) if len(found) else NOTHING


def times(run: Run) -> pd.DataFrame:
    """Median time per phase of each timed network, over its cells."""
    return summary(run.study(STUDY), "time")


def accuracy(run: Run) -> dict[str, pd.DataFrame]:
    """Median test and train accuracy and gap over the replicate seeds, at the largest training fraction, per
    metric (a repeat cell in the other framework is no replicate)."""
    df = replicates(run.study(STUDY))
    return {metric: summary(full_data(df) if len(df) else df, metric) for metric in ACCURACY}


def cell_values(run: Run) -> dict[str, str]:
    df = run.study(STUDY)
    return time_values(df) | accuracy_values(df)


# ---- one k x k convolution against a stack of smaller ones ------------------------------------------

def stack_pairs(df: pd.DataFrame) -> list[tuple[str, str]]:
    """(single, stack): an arch of depth 1 and one of more depth with the same receptive field and activation, by the
    first block (tidy's kernel, depth and receptive_field columns)."""
    archs = df[df["status"] == "ok"].drop_duplicates("arch")
    rows = archs.sort_values(["receptive_field", "depth", "pieces", "width", "arch"]).to_dict("records")
    return [(a["arch"], b["arch"]) for a in rows for b in rows
            if a["depth"] == 1 and b["depth"] > 1 and a["receptive_field"] == b["receptive_field"]
            and (a["activation"], a["pieces"]) == (b["activation"], b["pieces"])]


@dataclass
class Pair:
    """A single kernel (a) against the stack (b) in one setup: time ratios a/b per phase (ratio, lo, hi), the
    parameter ratio of the timed networks (params) and of the trained ones (trained_params: a trained network's
    input and classes, and so its count, can differ from the timed one's), each one's median test accuracy and train/test gap (fractions), None where missing, and the
    per-seed differences a minus b (test accuracy over the seeds both finished, gap over those both converged)."""
    slug: str
    label: str  # 'PyTorch eager', with the config where the slug has one
    a: str
    b: str
    ratios: dict[str, tuple[float, float, float, Kind]] = field(default_factory=dict)
    params: float | None = None
    trained_params: float | None = None
    test: tuple[float, float] | None = None
    gap: tuple[float, float] | None = None
    test_diffs: tuple[float, ...] = ()
    gap_diffs: tuple[float, ...] = ()

    @property
    def key(self) -> str:
        return f"{STUDY}/{self.slug}/{self.a}-over-{self.b}"

    @property
    def diff_key(self) -> str:
        return f"{STUDY}/{self.slug}/{self.a}-vs-{self.b}"


def pick(summary: pd.DataFrame, slug: str, arch: str, phase: str):
    hit = summary[(summary["slug"] == slug) & (summary["arch"] == arch) & (summary["phase"] == phase)]
    return hit.iloc[0] if len(hit) else None


def phase_ratio(run: Run, ta, tb, phase: str) -> tuple[float, float, float, Kind]:
    """Time of a over b in one phase and its interval's kind: over the launch-level medians, paired by launch, where
    both ran in several launches (stats.launch_ratio); else from the quartiles of the one launch (stats.time_ratio)."""
    df = run.study(STUDY)
    found = launch_ratio(*(launch_medians(df, phase, task="speed", setup=x["setup"], config=x["config"], arch=x["arch"])
                           for x in (ta, tb)))
    if found:
        return (*found[:3], Kind.LAUNCHES)
    return (*time_ratio(ta["value"], ta["iqr"], tb["value"], tb["iqr"]), Kind.QUARTILES)


def comparisons(run: Run) -> list[Pair]:
    """Every stack pair in every setup where both networks have a time or an accuracy: pair by pair, setups in
    alphabetical order within a pair."""
    t, acc = times(run), accuracy(run)
    test, gap = acc["test_accuracy"], acc["gap"]
    both = pd.concat([t, test])
    if both.empty:
        return []
    found = []
    for a, b in stack_pairs(run.study(STUDY)):
        for slug, rows in both.groupby("slug", sort=True):
            if not {a, b} <= set(rows["arch"]):
                continue
            ra = rows[rows["arch"] == a].iloc[0]
            config = f" ({ra['config']})" if slug.startswith(f"{ra['setup']}-{ra['config']}") else ""
            dataset = f", {ra['dataset']}" if slug.endswith(f"-{ra['dataset']}") else ""  # (query.slugs)
            label = setup_label(ra["framework"], ra["engine"]) + config + dataset
            pair = Pair(slug, label, a, b)
            for phase in TIME_PHASES:
                ta, tb = pick(t, slug, a, phase), pick(t, slug, b, phase)
                if ta is not None and tb is not None:
                    pair.ratios[phase] = phase_ratio(run, ta, tb, phase)
            pair.params = params_ratio(t, slug, a, b)
            pair.trained_params = params_ratio(test, slug, a, b)
            for name, summary in (("test", test), ("gap", gap)):
                xa, xb = pick(summary, slug, a, "final"), pick(summary, slug, b, "final")
                if xa is not None and xb is not None:
                    setattr(pair, name, (xa["value"], xb["value"]))
            pair.test_diffs, pair.gap_diffs = seed_diffs(run, slug, a, b)
            found.append(pair)
    return found


def params_ratio(summary: pd.DataFrame, slug: str, a: str, b: str) -> float | None:
    """a's parameters over b's in one setup of a summary (the timed or the trained networks); None where missing."""
    found = [summary.loc[(summary["slug"] == slug) & (summary["arch"] == x), "params"].dropna() for x in (a, b)]
    return float(found[0].iloc[0] / found[1].iloc[0]) if all(len(f) for f in found) else None


def seed_diffs(run: Run, slug: str, a: str, b: str) -> tuple[tuple, tuple]:
    """a minus b per seed at the largest training fraction in one setup, test accuracy and train/test gap, over the
    seeds where both runs converged: a run stopped at the cap answers no accuracy question, and its gap compares an
    undertrained net with a trained one."""
    df = run.study(STUDY)
    df = full_data(df[df["task"] == "train"]) if len(df) else df
    if df.empty:
        return (), ()
    keys = ("setup", "config", "dataset", "train_fraction")  # never a pair across data sets
    out = []
    for metric in ("test_accuracy", "gap"):
        wide = per_seed(df, metric, keys)
        if wide.empty or not {a, b} <= set(wide.columns):
            out.append(())
            continue
        wide = wide[[unit_slug(df, s, c, d) == slug for s, c, d, *_ in wide.index]]
        d = wide[a] - wide[b]
        conv = converged_pairs(df, keys).reindex(wide.index)
        d = d[(conv.get(a, 1.0) == 1) & (conv.get(b, 1.0) == 1)]
        out.append(tuple(float(x) for x in d.dropna()))
    return out[0], out[1]


def unit_slug(df: pd.DataFrame, setup: str, config: str, dataset: str) -> str:
    """The slug of a setup, config and data set (as query.slugs): the setup, with the config where the study's train
    cells ran in several, and the data set where they trained on several."""
    from convbench.analysis.query import with_config

    many, sets = with_config(df)["config"].nunique() > 1, df["dataset"].nunique() > 1
    slug = f"{setup}-{config}" if many else setup
    return f"{slug}-{dataset}" if sets else slug


def pair_verdicts(pairs: list[Pair], margins: Margins = MARGINS) -> list[Verdict]:
    return [time_verdict(f"{p.key}/{phase}-ratio", f"{p.slug}/{p.a}", f"{p.slug}/{p.b}", f"{phase} time", r, lo, hi,
                         kind, margins) for p in pairs for phase, (r, lo, hi, kind) in p.ratios.items()]


def stack_verdicts(pairs: list[Pair], margins: Margins = MARGINS) -> list[Verdict]:
    """Per phase, every pair and setup at once: the median of the ratios and the lowest lo and highest hi of their
    intervals (of their one kind; SPREAD where they mix kinds), decided as one interval: a direction or equivalence
    only where every pair's interval says it."""
    verdicts = []
    for phase in TIME_PHASES:
        found = [p.ratios[phase] for p in pairs if phase in p.ratios]
        if not found:
            continue
        r, lo, hi, kinds = zip(*found)
        kind = kinds[0] if len(set(kinds)) == 1 else Kind.SPREAD
        verdicts.append(time_verdict(f"{STUDY}/stack/{phase}-ratio", "single k x k", "stacked", f"{phase} time",
                                     float(np.median(r)), min(lo), max(hi), kind, margins, n=len(found)))
    return verdicts


def accuracy_verdicts(pairs: list[Pair], margins: Margins = MARGINS) -> list[Verdict]:
    """Single minus stack per seed, test accuracy and train/test gap, as one family of paired verdicts (Holm)."""
    family = [Paired(f"{p.diff_key}/test-accuracy-diff", f"{p.slug}/{p.a}", f"{p.slug}/{p.b}", "test accuracy",
                     p.test_diffs) for p in pairs if p.test_diffs]
    family += [Paired(f"{p.diff_key}/gap-diff", f"{p.slug}/{p.a}", f"{p.slug}/{p.b}", "train/test gap", p.gap_diffs,
                      "gap") for p in pairs if p.gap_diffs]
    return paired_verdicts(family, margins)


def family_size(pairs: list[Pair]) -> int:
    """Holm's m: the accuracy and gap comparisons of accuracy_verdicts' family, those on one seed pair too (they
    count without an interval of their own)."""
    return sum(bool(p.test_diffs) for p in pairs) + sum(bool(p.gap_diffs) for p in pairs)


def extremes(found: list[Verdict]) -> list[Verdict]:
    """The test-accuracy verdicts of lowest and highest difference again, under kernel/stack/accuracy-lowest and
    -highest: what the abstract and conclusions quote."""
    acc = [v for v in found if v.key.endswith("/test-accuracy-diff")]
    if not acc:
        return []
    low, high = min(acc, key=lambda v: v.estimate), max(acc, key=lambda v: v.estimate)
    return [v.renamed(f"{STUDY}/stack/accuracy-{name}") for name, v in (("lowest", low), ("highest", high))]


def pair_values(pairs: list[Pair], found: list[Verdict]) -> dict[str, str]:
    values = {}
    for p in pairs:
        if p.params is not None:
            values[f"{p.key}/params-ratio"] = ratio(p.params)
        if p.trained_params is not None:
            values[f"{p.key}/trained-params-ratio"] = ratio(p.trained_params)
    timed = [p for p in pairs if {"backward", "step"} <= set(p.ratios)]  # what the text quotes
    acc = [v for v in found if v.key.endswith("/test-accuracy-diff")]
    gaps = [v for v in found if v.key.endswith("/gap-diff")]
    params = [p.params for p in pairs if p.params is not None]  # the timed networks'
    trained = [p.trained_params for p in pairs if p.trained_params is not None]  # the trained ones'
    values |= detectable_values(f"{STUDY}/stack", acc)
    values.update({
        f"{STUDY}/stack/timed": flag(timed), f"{STUDY}/stack/trained": flag(acc),
        f"{STUDY}/stack/pairs": str(len(timed)), f"{STUDY}/stack/accuracy-pairs": str(len(acc)),
        f"{STUDY}/stack/setups": str(len({p.slug for p in pairs})),
        # outcomes of the paired intervals against the accuracy margin
        f"{STUDY}/stack/single-higher": str(sum(v.outcome is Outcome.HIGHER for v in acc)),
        f"{STUDY}/stack/single-lower": str(sum(v.outcome is Outcome.LOWER for v in acc)),
        f"{STUDY}/stack/equivalent": str(sum(v.outcome is Outcome.EQUIVALENT for v in acc)),
        f"{STUDY}/stack/undecided": str(sum(v.outcome is Outcome.UNDECIDED for v in acc)),
        f"{STUDY}/stack/one-pair": flag(len(acc) == 1),  # the text quotes the one interval instead of a range
        f"{STUDY}/stack/all-undecided": flag(len(acc) and all(v.outcome is Outcome.UNDECIDED for v in acc)),
        f"{STUDY}/stack/single-larger-gap": str(sum(v.outcome is Outcome.HIGHER for v in gaps)),
        f"{STUDY}/stack/single-smaller-gap": str(sum(v.outcome is Outcome.LOWER for v in gaps)),
        f"{STUDY}/stack/gap-equivalent": str(sum(v.outcome is Outcome.EQUIVALENT for v in gaps)),
        f"{STUDY}/stack/gap-undecided": str(sum(v.outcome is Outcome.UNDECIDED for v in gaps)),
        f"{STUDY}/stack/accuracy-tally": tally((v.outcome for v in acc), ACCURACY_WORDS),
        f"{STUDY}/stack/gap-tally": tally((v.outcome for v in gaps), GAP_WORDS),
        f"{STUDY}/stack/gap-pairs": str(len(gaps)),
        **{f"{STUDY}/stack/{name}-tally-of": tally_of((v.outcome for v in these), labels, noun)
           for name, these, labels, noun in (("accuracy", acc, ACCURACY_WORDS, "comparison"),
                                             ("accuracy-pairs", acc, ACCURACY_WORDS, "pair"),
                                             ("gap", gaps, GAP_WORDS, "comparison"))},
        f"{STUDY}/stack/gap-compared": flag(gaps),
        f"{STUDY}/stack/seeds": words(sorted({str(v.n) for v in acc})) or "0",
        f"{STUDY}/stack/family": str(family_size(pairs)),
    })
    if acc:
        values[f"{STUDY}/stack/test-accuracy-diff-min"] = signed(percent(min(v.estimate for v in acc)))
        values[f"{STUDY}/stack/test-accuracy-diff-max"] = signed(percent(max(v.estimate for v in acc)))
    values[f"{STUDY}/stack/params-ratio"] = span(params)  # '0.89' or '0.60--1.35'; '--' where no counts are recorded
    # the trained stack's parameters over the trained single kernel's, what the accuracy sentences are about:
    # "two 3x3 at fewer weights than one 5x5" holds below 1
    values[f"{STUDY}/stack/stack-params-min"] = ratio(1 / max(trained)) if trained else "--"
    values[f"{STUDY}/stack/stack-params-max"] = ratio(1 / min(trained)) if trained else "--"
    values[f"{STUDY}/stack/stack-params"] = span([1 / p for p in trained])  # '1.21' or '0.60--1.35'; '--' for none
    values[f"{STUDY}/stack/fewer-weights"] = fewer_weights([1 / p for p in trained])
    return values


EQUAL_PARAMS = 0.02  # a stack within 2 % of its single kernel's parameters matches them (the equal-parameter pairs)


PREMISE = {"fewer": "had fewer weights than {whose} single kernel, as VGG has it",
           "same": "matched {whose} single kernel's parameters within " + f"{EQUAL_PARAMS * 100:g}\\,\\%",
           "more": "had more weights than {whose} single kernel, against VGG's premise"}


def fewer_weights(stack_over_single: list[float]) -> str:
    """Which way VGG's premise (a stack has fewer weights than the single kernel of its field) went over the trained
    pairs: 'all 4 stacks had fewer weights than the single kernel, as VGG's premise has it', or the counts of fewer,
    matched (within EQUAL_PARAMS) and more."""
    n = len(stack_over_single)
    if not n:
        return "--"
    fewer = sum(r < 1 - EQUAL_PARAMS for r in stack_over_single)
    more = sum(r > 1 + EQUAL_PARAMS for r in stack_over_single)
    if fewer == n:
        stacks = "the stack" if n == 1 else f"all {n} stacks"
        return f"{stacks} had fewer weights than the single kernel, as VGG's premise has it"
    counts = {"fewer": fewer, "same": n - fewer - more, "more": more}
    if n == 1:
        return "the stack " + next(PREMISE[what] for what, c in counts.items() if c).format(whose="its")
    return f"of the {n} stacks, " + "; ".join(f"{c} {PREMISE[what].format(whose='their')}"
                                               for what, c in counts.items() if c)


SPEED_WORDS = {Outcome.FASTER: "faster", Outcome.SLOWER: "slower", Outcome.EQUIVALENT: "as fast within the margin",
               Outcome.UNDECIDED: "undecided"}


def phase_tally(pairs: list[Pair], found: list[Verdict], phase: str) -> str:
    """How the single kernel's time in one phase came out against the stack's, comparison by comparison (a pooled
    verdict over setups would hide a setup that decided): with one pair per setup each setup named with its ratio and
    interval, 'faster in PyTorch eager (0.73x, 0.71--0.74x) and undecided in TensorFlow eager (...)'; else the
    counts, 'faster in 3 and undecided in 1 of 4 comparisons'. '--' where no pair timed the phase."""
    by_key = {v.key: v for v in found}
    mine = [(p, by_key[f"{p.key}/{phase}-ratio"]) for p in sorted(pairs, key=lambda p: setup_rank(p.slug))
            if f"{p.key}/{phase}-ratio" in by_key]
    if not mine:
        return "--"
    if len({p.slug for p, _ in mine}) < len(mine):
        return f"{tally((v.outcome for _, v in mine), SPEED_WORDS)} of {len(mine)} comparisons"
    return words(f"{word} in " + words(f"{p.label} ({ratio(v.estimate)}{X}, {ends(v)}{X})"
                                         for p, v in mine if v.outcome is outcome)
                 for outcome, word in SPEED_WORDS.items() if any(v.outcome is outcome for _, v in mine))


def ends(v: Verdict) -> str:
    """A time verdict's interval 'lo--hi', each end with the digits that show on which side of the margin it lies."""
    return "--".join(beside(x, (v.margin, 1 / v.margin)) for x in (v.lo, v.hi))


def speed_values(pairs: list[Pair], margins: Margins = MARGINS) -> dict[str, str]:
    found, values = pair_verdicts(pairs, margins), {}
    for phase in ("forward", "backward", "step"):
        values[f"{STUDY}/stack/{phase}-tally"] = phase_tally(pairs, found, phase)
        values[f"{STUDY}/stack/{phase}-pooled"] = flag(sum(phase in p.ratios for p in pairs) > 2)  # a median of 3+
    return values


# ---- the study's -------------------------------------------------------------------------------------

def ran(run: Run) -> bool:
    df = run.study(STUDY)
    return bool(len(df)) and bool((df["status"] == "ok").any())


def values(run: Run) -> dict[str, str]:
    pairs = comparisons(run)
    seeds = accuracy(run)["test_accuracy"]
    return {**cell_values(run), **pair_values(pairs, accuracy_verdicts(pairs, run.margins)),
            **speed_values(pairs, run.margins),
            f"{STUDY}/seeds": str(int(seeds["seeds"].max())) if len(seeds) else "0",
            f"{STUDY}/seeds-text": seeds_phrase(seeds["seeds"]),
            f"{STUDY}/trained": flag(len(seeds)),
            f"{STUDY}/launches": str(launch_count(run.study(STUDY))),
            f"{STUDY}/by-launch": flag(launch_count(run.study(STUDY)) > 1),
            f"{STUDY}/level": f"{100 * LEVEL:g}"}


def verdicts(run: Run) -> list[Verdict]:
    pairs = comparisons(run)
    found = accuracy_verdicts(pairs, run.margins)
    return (pair_verdicts(pairs, run.margins) + stack_verdicts(pairs, run.margins) + found + extremes(found))

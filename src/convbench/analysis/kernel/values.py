"""The kernel study's numbers: each network's times and accuracies, one k x k convolution against the stack of 3x3
convolutions with the same receptive field, and the frameworks against each other in eager mode.

Keys (<setup> is framework-engine, with the config appended where the study's task ran in several; see slugs):
  kernel/<setup>/<arch>/<phase>-ms, <phase>-iqr-ms          median time of a phase and its IQR, ms
  kernel/<setup>/<arch>/test-accuracy, train-accuracy, gap  median over seeds, percent (gap: points)
  kernel/<setup>/<a>-over-<b>/<phase>-ratio                 Verdict: time of a over b, -lo/-hi quartile-based, -word
  kernel/<setup>/<a>-over-<b>/params-ratio; <a>-vs-<b>/test-accuracy-diff, gap-diff (a minus b, points)
  kernel/stack/...                                          every pair and setup at once: what the text quotes
  frameworks/<s1>-over-<s2>/<phase>-ratio{,-min,-max}       median (range) over the networks both timed
  frameworks/eager/<phase>-ratio                            Verdict: the slower eager setup over the faster one
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from convbench.analysis.formatting import (escape, flag, percent, printed, ratio, setup_label, setup_rank,
                                           signed, speed_word)
from convbench.analysis.stats import LEVEL, Verdict, time_ratio
from convbench.analysis.study import Run
from convbench.analysis.tidy import SUMMARY_KEYS, accuracy_values, full_data, slugs, summarise, time_values

STUDY = "kernel"
ENGINES = "engines"  # that study compares every engine with intervals of its own; the framework ratios leave it out
TIME_PHASES = ["forward", "backward", "optimizer", "total", "step"]
ACCURACY = ["test_accuracy", "train_accuracy", "gap"]
MIXED = "not consistently faster or slower than"  # the pairs disagree


# what a summary of no cells has (a run without any cell of the study)
NOTHING = pd.DataFrame(columns=[*SUMMARY_KEYS, "phase", "value", "iqr", "seeds", "noisy", "kernel", "depth",
                                "receptive_field", "params", "slug"])


def summary(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """tidy.summarise with each row's key part (slug); NOTHING where the study has no cell of that metric."""
    found = summarise(df, metric) if len(df) else NOTHING
    return found.assign(slug=slugs(found)) if len(found) else NOTHING


def times(run: Run) -> pd.DataFrame:
    """Median time per phase of each timed network, over its cells."""
    return summary(run.study(STUDY), "time")


def accuracy(run: Run) -> dict[str, pd.DataFrame]:
    """Median test and train accuracy and gap over seeds, at the largest training fraction, per metric."""
    df = run.study(STUDY)
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
    parameter ratio, and each one's median test accuracy and train/test gap (fractions), None where missing."""
    slug: str
    label: str  # 'PyTorch eager', with the config where the slug has one
    a: str
    b: str
    ratios: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    params: float | None = None
    test: tuple[float, float] | None = None
    gap: tuple[float, float] | None = None

    @property
    def key(self) -> str:
        return f"{STUDY}/{self.slug}/{self.a}-over-{self.b}"

    @property
    def diff_key(self) -> str:
        return f"{STUDY}/{self.slug}/{self.a}-vs-{self.b}"


def pick(summary: pd.DataFrame, slug: str, arch: str, phase: str):
    hit = summary[(summary["slug"] == slug) & (summary["arch"] == arch) & (summary["phase"] == phase)]
    return hit.iloc[0] if len(hit) else None


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
            ra, rb = rows[rows["arch"] == a].iloc[0], rows[rows["arch"] == b].iloc[0]
            label = setup_label(ra["framework"], ra["engine"]) + (f" ({ra['config']})" if slug != ra["setup"] else "")
            pair = Pair(slug, label, a, b)
            for phase in TIME_PHASES:
                ta, tb = pick(t, slug, a, phase), pick(t, slug, b, phase)
                if ta is not None and tb is not None:
                    pair.ratios[phase] = time_ratio(ta["value"], ta["iqr"], tb["value"], tb["iqr"])
            if pd.notna(ra["params"]) and pd.notna(rb["params"]):
                pair.params = ra["params"] / rb["params"]
            for name, summary in (("test", test), ("gap", gap)):
                xa, xb = pick(summary, slug, a, "final"), pick(summary, slug, b, "final")
                if xa is not None and xb is not None:
                    setattr(pair, name, (xa["value"], xb["value"]))
            found.append(pair)
    return found


def pair_verdicts(pairs: list[Pair]) -> list[Verdict]:
    return [Verdict(f"{p.key}/{phase}-ratio", f"{p.slug}/{p.a}", f"{p.slug}/{p.b}", f"{phase} time", r, lo, hi,
                    speed_word(r, lo, hi)) for p in pairs for phase, (r, lo, hi) in p.ratios.items()]


def stack_verdicts(pairs: list[Pair]) -> list[Verdict]:
    """Per phase, every pair and setup at once: the median of the ratios, the lowest lo and highest hi of their
    quartile-based ranges, and the word they agree on (MIXED where they do not)."""
    verdicts = []
    for phase in TIME_PHASES:
        found = [p.ratios[phase] for p in pairs if phase in p.ratios]
        if not found:
            continue
        r, lo, hi = zip(*found)
        said = {speed_word(*x) for x in found}
        verdicts.append(Verdict(f"{STUDY}/stack/{phase}-ratio", "single k x k", "stacked", f"{phase} time",
                                float(np.median(r)), min(lo), max(hi), said.pop() if len(said) == 1 else MIXED,
                                n=len(found)))
    return verdicts


def pair_values(pairs: list[Pair]) -> dict[str, str]:
    values = {}
    for p in pairs:
        if p.params is not None:
            values[f"{p.key}/params-ratio"] = ratio(p.params)
        if p.test:
            values[f"{p.diff_key}/test-accuracy-diff"] = percent(p.test[0] - p.test[1])
        if p.test and p.gap:  # as before: the gap is compared only where the accuracies are
            values[f"{p.diff_key}/gap-diff"] = percent(p.gap[0] - p.gap[1])
    timed = [p for p in pairs if {"backward", "step"} <= set(p.ratios)]  # what the text quotes
    trained = [p for p in pairs if p.test]
    gaps = [p for p in trained if p.gap]
    params = [p.params for p in pairs if p.params is not None]
    values.update({
        f"{STUDY}/stack/timed": flag(timed), f"{STUDY}/stack/trained": flag(trained),
        f"{STUDY}/stack/pairs": str(len(timed)), f"{STUDY}/stack/accuracy-pairs": str(len(trained)),
        f"{STUDY}/stack/setups": str(len({p.slug for p in pairs})),
        # directions from the numbers as printed: the table beside the text shows those
        f"{STUDY}/stack/single-higher": str(sum(printed(p.test[0]) > printed(p.test[1]) for p in trained)),
        f"{STUDY}/stack/single-lower": str(sum(printed(p.test[0]) < printed(p.test[1]) for p in trained)),
        f"{STUDY}/stack/single-larger-gap": str(sum(printed(p.gap[0]) > printed(p.gap[1]) for p in gaps)),
        f"{STUDY}/stack/gap-pairs": str(len(gaps)),
    })
    if trained:
        diffs = [p.test[0] - p.test[1] for p in trained]
        values[f"{STUDY}/stack/test-accuracy-diff-min"] = signed(percent(min(diffs)))
        values[f"{STUDY}/stack/test-accuracy-diff-max"] = signed(percent(max(diffs)))
    values[f"{STUDY}/stack/params-ratio-min"] = ratio(min(params)) if params else "--"  # no counts recorded
    values[f"{STUDY}/stack/params-ratio-max"] = ratio(max(params)) if params else "--"
    return values


# ---- frameworks in eager mode ----------------------------------------------------------------------------

def framework_ratios(run: Run) -> dict[tuple[str, str, str], pd.Series]:
    """(s1, s2, phase) -> per network (study, arch, config) time of s1 over s2, for every pair of setups (s1 < s2
    alphabetically) over the timed networks of every study but the engines study."""
    t = summarise(run.tidy, "time") if len(run.tidy) else pd.DataFrame()
    if t.empty:
        return {}
    t = t[(t["task"] == "speed") & (t["study"] != ENGINES)]
    setups, found = sorted(t["setup"].unique()), {}
    for phase in ["backward", "step"]:
        wide = t[t["phase"] == phase].pivot_table(index=["study", "arch", "config"], columns="setup", values="value",
                                                  aggfunc="median")
        for i, s1 in enumerate(setups):
            for s2 in setups[i + 1:]:
                if s1 in wide and s2 in wide:
                    ratios = (wide[s1] / wide[s2]).dropna()
                    if len(ratios):
                        found[(s1, s2, phase)] = ratios
    return found


def eager_pair(found) -> tuple[str, str] | None:
    """The first two eager setups in the paper's order that were compared."""
    eager = sorted({s for s1, s2, _ in found for s in (s1, s2) if s.endswith("-eager")}, key=setup_rank)
    pairs = [(s1, s2) for s1, s2, _ in found if s1 in eager[:2] and s2 in eager[:2]]
    return pairs[0] if pairs else None


def framework_verdicts(run: Run) -> list[Verdict]:
    """Per phase, the slower eager setup's time over the faster one's: median over the networks, range min--max."""
    found = framework_ratios(run)
    pair, verdicts = eager_pair(found), []
    for phase in ["backward", "step"]:
        if pair is None or (*pair, phase) not in found:
            continue
        s1, s2 = pair
        r = found[(s1, s2, phase)]
        slow, fast, r = (s1, s2, r) if r.median() >= 1 else (s2, s1, 1 / r)
        verdicts.append(Verdict(f"frameworks/eager/{phase}-ratio", slow, fast, f"{phase} time", float(r.median()),
                                float(r.min()), float(r.max()), speed_word(r.median(), r.min(), r.max()), n=len(r)))
    return verdicts


def framework_values(run: Run) -> dict[str, str]:
    values = {}
    for (s1, s2, phase), r in framework_ratios(run).items():
        key = f"frameworks/{s1}-over-{s2}/{phase}-ratio"
        values.update({key: ratio(r.median()), f"{key}-min": ratio(r.min()), f"{key}-max": ratio(r.max())})
    verdicts = framework_verdicts(run)
    for v in verdicts:
        phase = v.key.rsplit("/", 1)[1].removesuffix("-ratio")
        values[f"frameworks/eager/{phase}-slow"] = escape(setup_label(*v.subject.split("-", 1)))
        values[f"frameworks/eager/{phase}-fast"] = escape(setup_label(*v.reference.split("-", 1)))
        values[f"frameworks/eager/{phase}-networks"] = str(v.n)
    values["frameworks/eager"] = flag({v.key for v in verdicts} == {f"frameworks/eager/{p}-ratio"
                                                                    for p in ("backward", "step")})
    return values


# ---- the study's -------------------------------------------------------------------------------------

def ran(run: Run) -> bool:
    df = run.study(STUDY)
    return bool(len(df)) and bool((df["status"] == "ok").any())


def values(run: Run) -> dict[str, str]:
    pairs = comparisons(run)
    seeds = accuracy(run)["test_accuracy"]
    return {**cell_values(run), **pair_values(pairs), **framework_values(run),
            f"{STUDY}/seeds": str(int(seeds["seeds"].max())) if len(seeds) else "0",
            f"{STUDY}/level": f"{100 * LEVEL:g}"}


def verdicts(run: Run) -> list[Verdict]:
    pairs = comparisons(run)
    return pair_verdicts(pairs) + stack_verdicts(pairs) + framework_verdicts(run)

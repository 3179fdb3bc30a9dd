"""The run's cells across studies: how many training runs converged, the cross-framework repeat, and the frameworks
against each other in eager mode over every study's timed networks (keys overview/convergence/..., overview/repeat/...,
overview/frameworks/...; the verdicts of the last)."""
from __future__ import annotations

import pandas as pd

from convbench.analysis.formatting import (
    count_words,
    escape,
    flag,
    percent,
    ratio,
    setup_label,
    setup_rank,
    tt,
    words,
)
from convbench.analysis.query import convergence, repeat_check, replicates, summarise
from convbench.analysis.stats import Kind, Verdict, time_verdict
from convbench.analysis.study import Run

PREFIX = "overview"
FRAMEWORKS = f"{PREFIX}/frameworks"  # the frameworks against each other, over every study's timed networks
ENGINES = "engines"  # that study compares every engine with intervals of its own; the framework ratios leave it out


# ---- convergence and the cross-framework repeat (every study's train cells) ------------------------------

def per_study(rows: pd.DataFrame, metric: str) -> str:
    """A criterion setting as each study set it: '30' where all agree, else '30 (activation and kernel), 60
    (learned) and 80 (tracking)'; a study that set it per data set is named with each ('activation on planted'). An
    epoch cap is the one at the whole training split: a run on a fraction f has 1/f times it, which the text says
    once. '--' where no row says."""
    rows = rows[rows["metric"] == metric]
    if rows.empty:
        return "--"
    cap = metric == "criterion_max_epochs"
    rows = rows.assign(setting=(rows["value"] * rows["train_fraction"]).round() if cap else rows["value"],
                       data=rows["dataset"].fillna("") if "dataset" in rows else "")
    settings = rows.drop_duplicates(["study", "data", "setting"])
    apart = settings.groupby("study")["setting"].nunique() > 1  # the studies whose data sets set it differently
    groups = {}
    for r in settings.sort_values(["setting", "study", "data"]).itertuples():
        label = rf"{tt(r.study)} on {tt(r.data)}" if apart[r.study] and r.data else tt(r.study)
        groups.setdefault(f"{r.setting:.0f}", []).append(label)
    if len(groups) == 1:
        return next(iter(groups))
    return words(f"{value} ({words(dict.fromkeys(labels))})" for value, labels in groups.items())


def convergence_values(run: Run) -> dict[str, str]:
    """Over every study's replicate train cells: runs, how many converged, did not (of those, how many ended at
    chance: never converged), or do not say."""
    c = convergence(replicates(run.tidy))
    done, known, chance = (c["converged"] == 1).sum(), c["converged"].notna().sum(), (c["at_chance"] == 1).sum()
    return {f"{PREFIX}/convergence/runs": str(len(c)), f"{PREFIX}/convergence/converged": str(int(done)),
            f"{PREFIX}/convergence/unconverged": str(int(known - done)),
            f"{PREFIX}/convergence/any-unconverged": flag(known > done),
            f"{PREFIX}/convergence/at-chance": str(int(chance)), f"{PREFIX}/convergence/any-at-chance": flag(chance),
            f"{PREFIX}/convergence/recorded": flag(known > 0 and known == len(c)),
            f"{PREFIX}/convergence/max-epochs": per_study(replicates(run.tidy[run.tidy["status"] == "ok"]),
                                                          "criterion_max_epochs")}


def repeat_values(run: Run) -> dict[str, str]:
    """The cross-framework repeat: the largest per-epoch difference in test accuracy (points) and loss between a
    repeat cell and the replicate on the same seed in the other framework, over every network repeated."""
    r = repeat_check(run.tidy)
    values = {f"{PREFIX}/repeat/ran": flag(len(r)), f"{PREFIX}/repeat/networks": str(len(r))}
    if len(r):
        setups = sorted({s for pair in zip(r["repeat"], r["replicate"]) for s in pair}, key=setup_rank)
        values |= {f"{PREFIX}/repeat/max-accuracy-diff": percent(r["accuracy"].max()),
                   f"{PREFIX}/repeat/median-final-diff": percent(r["final"].median()),
                   f"{PREFIX}/repeat/max-loss-diff": f"{r['loss'].max():.3g}" if r["loss"].notna().any() else "--",
                   f"{PREFIX}/repeat/repeat-setup": escape(setup_label(*r["repeat"].iloc[0].split("-", 1))),
                   f"{PREFIX}/repeat/replicate-setup": escape(setup_label(*r["replicate"].iloc[0].split("-", 1))),
                   f"{PREFIX}/repeat/setups": str(len(setups)),
                   f"{PREFIX}/repeat/seeds": count_words(r["seed"].nunique(), "seed")}
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
    """Per phase, the slower eager setup's time over the faster one's: median over the networks, range min--max
    (kind SPREAD), decided as an interval: slower only where every network's ratio is."""
    found = framework_ratios(run)
    pair, verdicts = eager_pair(found), []
    for phase in ["backward", "step"]:
        if pair is None or (*pair, phase) not in found:
            continue
        s1, s2 = pair
        r = found[(s1, s2, phase)]
        slow, fast, r = (s1, s2, r) if r.median() >= 1 else (s2, s1, 1 / r)
        verdicts.append(time_verdict(f"{FRAMEWORKS}/eager/{phase}-ratio", slow, fast, f"{phase} time",
                                     float(r.median()), float(r.min()), float(r.max()), Kind.SPREAD, run.margins,
                                     n=len(r)))
    return verdicts


def framework_values(run: Run) -> dict[str, str]:
    values = {}
    for (s1, s2, phase), r in framework_ratios(run).items():
        key = f"{FRAMEWORKS}/{s1}-over-{s2}/{phase}-ratio"
        values.update({key: ratio(r.median()), f"{key}-min": ratio(r.min()), f"{key}-max": ratio(r.max())})
    verdicts = framework_verdicts(run)
    for v in verdicts:
        phase = v.key.rsplit("/", 1)[1].removesuffix("-ratio")
        values[f"{FRAMEWORKS}/eager/{phase}-slow"] = escape(setup_label(*v.subject.split("-", 1)))
        values[f"{FRAMEWORKS}/eager/{phase}-fast"] = escape(setup_label(*v.reference.split("-", 1)))
        values[f"{FRAMEWORKS}/eager/{phase}-comparisons"] = str(v.n)  # a network timed at several batches counts
        r = framework_ratios(run)[(*sorted((v.subject, v.reference)), phase)]  # once per batch; the networks once
        values[f"{FRAMEWORKS}/eager/{phase}-networks"] = str(r.index.get_level_values("arch").nunique())
    values[f"{FRAMEWORKS}/eager"] = flag({v.key for v in verdicts} == {f"{FRAMEWORKS}/eager/{p}-ratio"
                                                                       for p in ("backward", "step")})
    return values


def values(run: Run) -> dict[str, str]:
    return {**convergence_values(run), **repeat_values(run), **framework_values(run)}

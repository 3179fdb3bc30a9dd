"""Replicates across process launches: the between-launch coefficient of variation of every timed cell and phase
(tidy's launch_cv rows), what the synchronised phase split costs against the blocked whole step (phase_overhead), and
the appendix table of the speed cells' CVs. Derived phases (a difference of two timed programs) are left out of the
CV: their mean can lie near zero, where a CV says nothing."""
from __future__ import annotations

import pandas as pd

from convbench.analysis.formatting import (
    X,
    escape,
    flag,
    percent,
    ratio,
    setup_label,
    setup_rank,
    share_words,
    span,
    tt,
)
from convbench.analysis.latex import booktabs, placeholder
from convbench.analysis.query import ARCH_ORDER, launch_count
from convbench.analysis.stats import ODD, odd_launch
from convbench.analysis.study import Run

GOAL = 0.05  # between-launch CV a quiet CPU should stay within (issue 14)
DERIVED = ("backward", "optimizer")  # the phases a derived cell gets by subtraction
SPEED_PHASES = ["forward", "backward", "optimizer", "step"]


def launch_cvs(df: pd.DataFrame) -> pd.DataFrame:
    """One row per ok timed cell and phase with a between-launch CV (value), derived phases left out."""
    rows = df[(df["status"] == "ok") & (df["metric"] == "launch_cv") & (df["phase"] != "total")]
    derived = (rows["phase_method"] == "derived") & rows["phase"].isin(DERIVED)
    return rows[~derived]


def values(df: pd.DataFrame) -> dict[str, str]:
    """speed/launches (the fewest of any timed cell), speed/by-launch, speed/launch-cv-{median,max} (percent, speed
    and layer cells, every phase), -max-cell, -goal, -within (cells x phases within the goal, of -count), and the
    phase split's overhead over the blocked step (median, min, max)."""
    timed = df[df["task"].isin(["speed", "layers"])] if len(df) else df
    out = {"speed/launches": str(launch_count(timed)), "speed/by-launch": flag(launch_count(timed) > 1),
           "speed/launch-cv-goal": f"{100 * GOAL:g}"}
    seconds = timed["min_seconds"].dropna() if len(timed) and "min_seconds" in timed else []
    out["speed/min-seconds"] = f"{seconds.min():g}" if len(seconds) else "0"
    every = launch_cvs(timed) if len(timed) else timed
    out["speed/launch-cv-ran"] = flag(len(every))
    if len(every):
        worst = every.loc[every["value"].idxmax()]
        out |= {"speed/launch-cv-max-cell": f"{tt(worst['cell_id'])} ({escape(worst['phase'])})",
                "speed/launch-cv-count": str(len(every)),
                "speed/launch-cv-within": str(int((every["value"] <= GOAL).sum())),
                "speed/launch-cv-all-within": flag((every["value"] <= GOAL).all())}
    # the text quotes the speed cells' CVs (Table tab:launch-cv lists them) and the layer cells' apart
    for task, key in (("speed", "speed/launch-cv"), ("layers", "speed/launch-cv-layers")):
        cvs = every[every["task"] == task] if len(every) else every
        out[f"{key}-any"] = flag(len(cvs))
        if len(cvs):
            out |= {f"{key}-median": percent(cvs["value"].median()), f"{key}-max": percent(cvs["value"].max())}
    out |= odd_values(timed) | {"speed/interleaved": flag(interleaved(timed))}
    overhead = timed[(timed["status"] == "ok") & (timed["metric"] == "phase_overhead")]["value"] if len(timed) else []
    out["speed/phase-overhead-ran"] = flag(len(overhead))
    if len(overhead):
        out |= {"speed/phase-overhead-median": ratio(overhead.median()), "speed/phase-overhead-min": ratio(overhead.min()),
                "speed/phase-overhead-max": ratio(overhead.max()), "speed/phase-overhead-span": span(overhead, unit=X)}
        times = timed[(timed["status"] == "ok") & (timed["metric"] == "time") & timed["phase"].isin(["total", "step"])]
        pooled = times.pivot_table(index="cell_id", columns="phase", values="value").dropna()
        pooled = pooled.loc[pooled.index.intersection(timed.loc[overhead.index, "cell_id"])]
        out["speed/phase-sum-span"] = span(pooled["total"] / pooled["step"], unit=X) if len(pooled) else "--"
    return out


def interleaved(timed: pd.DataFrame) -> bool:
    """Whether the frameworks' launches took turns (launch 1 of each, then launch 2 of each, ...) in every timed task
    where several ran: each framework's launch, as the span of its cells' start times (launch_start rows), ended before
    the next one began, and in time order the launch numbers never go down. False where one framework ran alone, or
    the records do not say when their launches ran."""
    rows = timed[(timed["metric"] == "launch_start") & (timed["status"] == "ok")] if len(timed) else timed
    tasks = [task for _, task in rows.groupby("task") if task["framework"].nunique() > 1] if len(rows) else []
    for task in tasks:
        spans = task.groupby(["framework", "launch"])["value"].agg(["min", "max"]).sort_values("min")
        numbers = spans.index.get_level_values("launch").to_numpy()
        if (numbers[1:] < numbers[:-1]).any() or (spans["max"].to_numpy()[:-1] > spans["min"].to_numpy()[1:]).any():
            return False
    return bool(tasks)


def odd_values(timed: pd.DataFrame) -> dict[str, str]:
    """How many launch medians of the timed cells (derived phases left out, as in the CV) were odd launches
    (stats.odd_launch), of how many."""
    rows = timed[(timed["status"] == "ok") & (timed["metric"] == "launch_time")] if len(timed) else timed
    rows = rows[~((rows["phase_method"] == "derived") & rows["phase"].isin(DERIVED))] if len(rows) else rows
    odd = sum(odd_launch(g.set_index("launch")["value"]) is not None
              for _, g in rows.groupby(["cell_id", "phase"])) if len(rows) else 0
    return {"speed/odd-percent": f"{100 * ODD:g}", "speed/odd-launches": str(odd), "speed/launch-medians": str(len(rows)),
            "speed/odd-sentence": odd_sentence(odd, len(rows))}


def odd_sentence(odd: int, medians: int) -> str:
    """'None of the 1020 launch medians was such an odd launch' (no zero count), '3 of the 1020 ... were such ...'."""
    text = share_words(odd, medians, "launch median")
    one = odd <= 1 or medians == 1
    return f"{text[0].upper()}{text[1:]} {'was such an odd launch' if one else 'were such odd launches'}"



def table(run: Run) -> str:
    """The speed cells' between-launch CV per phase (percent), by study; '--' where a phase has none (derived)."""
    caption = ("Between-launch coefficient of variation of every speed cell's phase medians (standard deviation over "
               f"mean of the launches' medians, percent); goal: at most {100 * GOAL:g}\\,\\%. ``--'': a derived phase "
               "(a difference of two timed programs) or none timed.")
    df = run.tidy
    cvs = launch_cvs(df[df["task"] == "speed"]) if len(df) else df
    if cvs.empty:
        return placeholder(caption, "tab:launch-cv", "The speed cells of this run ran in one launch each.")
    cvs = cvs.sort_values(["study", *ARCH_ORDER], kind="stable").assign(rank=cvs["setup"].map(setup_rank))
    cvs = cvs.sort_values(["study", "rank"], kind="stable")
    cvs = cvs.assign(Setup=[setup_label(f, e) for f, e in zip(cvs["framework"], cvs["engine"])],
                     Network=cvs["arch"], text=cvs["value"].map(percent))
    cvs = cvs.assign(Batch=cvs["batch_size"].map(lambda b: f"{b:.0f}")).sort_values(
        ["study", "rank", *ARCH_ORDER, "batch_size"], kind="stable")
    wide = cvs.pivot_table(index=["study", "Setup", "Network", "Batch"], columns="phase", values="text",
                           aggfunc="first", sort=False)  # one cell per row: each batch of a network is a cell
    wide = wide.reindex(columns=[p for p in SPEED_PHASES if p in wide.columns]).fillna("--").reset_index()
    studies = wide.pop("study")
    wide.columns = [c if c in ("Setup", "Network", "Batch") else c.capitalize() for c in wide.columns]
    return booktabs(wide, caption, "tab:launch-cv", "llr" + "r" * (len(wide.columns) - 3), size=r"\footnotesize",
                    groups=studies)

"""The reference study's numbers: which runs, GPUs and commit; TF32 against fp32 per network and phase (a Verdict
each, a ratio of the two runs' same cell over launch medians) and a verdict per phase over the networks; the
largest share of the theoretical peak the fp32 runs reached."""
from __future__ import annotations

import pandas as pd

from convbench.analysis.formatting import SHORT, escape, ms, ratio, words
from convbench.analysis.query import launch_medians
from convbench.analysis.reference.runs import KEY, PHASES, ReferenceRun, record_time, reference_runs, tf32_pairs
from convbench.analysis.reference.sweeps import graph_values, size_values
from convbench.analysis.roof import roof_values
from convbench.analysis.stats import (
    MARGINS,
    Kind,
    Margins,
    Verdict,
    bootstrap_ratio,
    decide_ratio,
    time_verdict,
    unpaired_ratio,
)
from convbench.analysis.study import Run

COLUMNS = ["pair", "cell_id", "study", "arch", "framework", "engine", "phase", "fp32", "tf32", "ratio", "lo", "hi",
           "outcome", "kind", "n"]


def compare(fp32: ReferenceRun, tf32: ReferenceRun, margins: Margins = MARGINS) -> pd.DataFrame:
    """TF32 over fp32 for every ok speed cell both runs timed, per phase: the medians (of the launch medians) and the
    ratio with its interval (stats.unpaired_ratio over the launch medians: the two runs ran one after the other, so no
    launch of one ran beside a launch of the other; a bootstrap of the raw samples where a cell ran in one launch)."""
    rows = []
    cells = fp32.tidy.drop_duplicates("cell_id").sort_values(["receptive_field", "depth", "cell_id"])
    both = set(_ok_speed(fp32)) & set(_ok_speed(tf32))
    for cell_id in [c for c in cells["cell_id"] if c in both]:  # the networks in the order of their receptive field
        cell = fp32.tidy[fp32.tidy["cell_id"] == cell_id].iloc[0]
        for phase in PHASES:
            launches = [launch_medians(run.tidy[run.tidy["cell_id"] == cell_id], phase) for run in (tf32, fp32)]
            found, kind = unpaired_ratio(*launches), Kind.WELCH
            if found is None:  # a cell of one launch: a bootstrap of its raw samples
                a, b = (_samples(run, cell_id, phase) for run in (tf32, fp32))
                found, kind = ((*bootstrap_ratio(a, b), len(a) + len(b)) if len(a) and len(b) else None), Kind.BOOTSTRAP
            if found is not None:
                r, lo, hi, n = found
                times = [record_time(run.tidy[run.tidy["cell_id"] == cell_id], phase) for run in (fp32, tf32)]
                rows.append([f"{fp32.name}/{tf32.name}", cell_id, cell["study"], cell["arch"], cell["framework"],
                             cell["engine"], phase, *times, r, lo, hi, decide_ratio(lo, hi, margins.ratio), kind, n])
    return pd.DataFrame(rows, columns=COLUMNS)


def _ok_speed(run: ReferenceRun) -> list[str]:
    df = run.tidy
    return list(df[(df["task"] == "speed") & (df["status"] == "ok")]["cell_id"].unique())


def _samples(run: ReferenceRun, cell_id: str, phase: str) -> pd.Series:
    s = run.samples
    return s[(s["cell_id"] == cell_id) & (s["phase"] == phase)]["value"]


def comparisons(run: Run) -> pd.DataFrame:
    pairs = tf32_pairs(reference_runs(run.reference))
    return (pd.concat([compare(*p, run.margins) for p in pairs], ignore_index=True) if pairs
            else pd.DataFrame(columns=COLUMNS))


def tf32_verdicts(run: Run) -> list[Verdict]:
    """One Verdict per network and phase: TF32 over fp32 (keys reference/tf32/<arch>/<phase>/ratio)."""
    c = comparisons(run)
    return [time_verdict(f"{KEY}/tf32/{r.arch}/{r.phase}/ratio", "tf32", "fp32", f"{r.phase} time on {r.arch}",
                         r.ratio, r.lo, r.hi, r.kind, run.margins, int(r.n))
            for r in c.drop_duplicates(["arch", "phase"]).itertuples()]


def phase_verdict(rows: pd.DataFrame) -> str:
    """A phase over the networks, as the outcomes allow: 'faster on every network', 'slower on ...', or 'faster on
    3, undecided on 2 of 5 networks'."""
    counts = rows["outcome"].value_counts()
    n = len(rows)
    short = SHORT
    if len(counts) == 1:
        return f"{short[counts.index[0]]} on every network" if n > 1 else f"{short[counts.index[0]]}"
    return words(f"{short[w]} on {k}" for w, k in counts.items()) + f" of {n} networks"


def tf32_values(run: Run) -> dict[str, str]:
    c = comparisons(run).drop_duplicates(["arch", "phase"])
    values = {f"{KEY}/tf32/ran": "1" if len(c) else "0", f"{KEY}/tf32/networks": str(c["arch"].nunique())}
    for phase in PHASES:
        rows = c[c["phase"] == phase]
        key = f"{KEY}/tf32/{phase}"
        values |= {f"{key}/verdict": phase_verdict(rows) if len(rows) else "--",
                   f"{key}/ratio-min": ratio(rows["ratio"].min()) if len(rows) else "--",
                   f"{key}/ratio-max": ratio(rows["ratio"].max()) if len(rows) else "--"}
    for r in c.itertuples():
        key = f"{KEY}/tf32/{r.arch}/{r.phase}"
        values |= {f"{key}-fp32-ms": ms(r.fp32), f"{key}-tf32-ms": ms(r.tf32)}
    if len(c):
        best = c.loc[c["ratio"].idxmin()]
        values |= {f"{KEY}/tf32/largest-arch": escape(best["arch"]), f"{KEY}/tf32/largest-phase": best["phase"],
                   f"{KEY}/tf32/largest-fp32-ms": ms(best["fp32"]), f"{KEY}/tf32/largest-tf32-ms": ms(best["tf32"]),
                   f"{KEY}/tf32/largest-ratio": ratio(best["ratio"])}
    return values


def reference_values(run: Run) -> dict[str, str]:
    runs = reference_runs(run.reference)
    fp32 = [r.tidy for r in runs.values() if not r.tf32]
    roof = roof_values(pd.concat(fp32, ignore_index=True) if fp32 else pd.DataFrame(), f"{KEY}/roof", "speed")
    return {f"{KEY}/runs": str(len(runs)), f"{KEY}/gpus": escape(", ".join(sorted({r.device for r in runs.values()})))
            or "none", f"{KEY}/records": str(sum(r.tidy["cell_id"].nunique() for r in runs.values())),
            f"{KEY}/commit": escape(", ".join(sorted({r.commit for r in runs.values()}))) or "none",
            f"{KEY}/commits": words(sorted({f"commit {escape(r.commit)}" for r in runs.values()})) or "none",
            f"{KEY}/versions": words(sorted({f"PyTorch {escape(str(r.first('versions.torch')))}" for r in runs.values()
                                             if r.first("versions.torch")})) or "versions not recorded",
            f"{KEY}/measured": escape(", ".join(sorted({r.measured for r in runs.values()}))) or "none",
            f"{KEY}/launches": _launches(runs), **roof, **tf32_values(run), **graph_values(run), **size_values(run)}


def _launches(runs: dict[str, ReferenceRun]) -> str:
    """How many launches the reference runs' ok timed cells ran in: '3', or '2--3' where some were cut short."""
    counts = pd.concat([r.tidy[(r.tidy["metric"] == "launch_time") & (r.tidy["status"] == "ok")]
                        .groupby("cell_id")["launch"].nunique() for r in runs.values()]) if runs else pd.Series()
    if not len(counts):
        return "1" if runs else "--"
    return str(counts.min()) if counts.min() == counts.max() else f"{counts.min()}--{counts.max()}"


def ran(run: Run) -> bool:
    return bool(reference_runs(run.reference))

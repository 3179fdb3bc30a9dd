"""The claim that one framework's backward pass is several times faster than the other's: the backward ratio of every
PyTorch engine over every TensorFlow engine on each network of the engines study, with its interval
(backward_claim.backward_ratio) decided against the factor (stats.decide_several); one Verdict per pair and network,
and the claim table."""
from __future__ import annotations

import numpy as np
import pandas as pd

from convbench.analysis.backward_claim import CLAIM, backward_ratio
from convbench.analysis.engines.cells import NAME, NOT_RESOLVED, ordered, study_cells
from convbench.analysis.formatting import (
    bracketed,
    escape,
    estimate_phrase,
    flag,
    framework_name,
    kind_phrase,
    ratio,
    setup_label,
    share_words,
    span,
    tt,
    words,
)
from convbench.analysis.latex import booktabs, flagged, noisy_note, placeholder
from convbench.analysis.stats import (
    LEVEL,
    RESAMPLES,
    SEED,
    SEVERAL,
    Kind,
    Outcome,
    Verdict,
    decide_several,
    several_verdict,
)
from convbench.analysis.study import Run

FACTOR = SEVERAL  # "several times" means at least this factor, either way



def claims(run: Run, resamples: int = RESAMPLES, seed: int = SEED) -> pd.DataFrame:
    """Per engine pair (PyTorch engine x TensorFlow engine) and arch of the engines study: the backward ratio
    PyTorch/TensorFlow with its interval (backward_claim.backward_ratio: over the launch-level medians, paired by
    launch; a bootstrap of the raw samples where the cells ran in one launch), seeds pooled.

    status is 'ok', 'failed' (either cell failed) or NOT_RESOLVED (a derived backward the data cannot resolve);
    outcome decide_several's (None unless ok); kind the interval's (stats.Kind); n the launches (or samples) behind
    the interval.
    """
    df, samples = run.tidy, run.samples
    cells = study_cells(df)
    rows = []
    for (arch, config), group in cells.groupby(["arch", "config"], sort=False):
        first, second = (group[group["framework"] == f] for f in CLAIM)
        for e1 in ordered(first["engine"]):
            for e2 in ordered(second["engine"]):
                a, b = first[first["engine"] == e1], second[second["engine"] == e2]
                ids = [*a["cell_id"], *b["cell_id"]]
                row = {"arch": arch, "config": config, "engine_a": e1, "engine_b": e2, "status": "failed",
                       "ratio": np.nan, "lo": np.nan, "hi": np.nan, "outcome": None, "n": 0, "kind": None,
                       "noisy": bool(df[df["cell_id"].isin(ids) & (df["phase"] == "backward")]["noisy"]
                                     .fillna(False).any())}
                found = backward_ratio(df, samples, a, b, resamples, seed)
                if (a["status"] == "ok").all() and (b["status"] == "ok").all() and found:
                    row.update(status="ok", outcome=decide_several(found["lo"], found["hi"], FACTOR),
                               **{k: found[k] for k in ("ratio", "lo", "hi", "n", "kind")})
                    if not found["resolved"]:  # a derived backward lost in the noise
                        row.update(status=NOT_RESOLVED, outcome=None)
                rows.append(row)
    return pd.DataFrame(rows, columns=["arch", "config", "engine_a", "engine_b", "status", "ratio", "lo", "hi",
                                       "outcome", "n", "kind", "noisy"])


def pair_key(row, configs: int) -> str:
    config = f"-{row.config}" if configs > 1 else ""
    return f"{NAME}/claim/{CLAIM[0]}-{row.engine_a}-over-{CLAIM[1]}-{row.engine_b}/{row.arch}{config}/ratio"


def claim_verdicts(run: Run) -> list[Verdict]:
    """One Verdict per pair of a PyTorch and a TensorFlow engine timed on the same network, both cells ok: the
    backward time of the first over the second (keys engines/claim/<torch-e1>-over-<tensorflow-e2>/<arch>/ratio)."""
    c = claims(run)
    ok = c[c["status"] == "ok"]
    return [several_verdict(pair_key(row, c["config"].nunique()), f"{CLAIM[0]}-{row.engine_a}",
                            f"{CLAIM[1]}-{row.engine_b}", f"backward time on {row.arch}", row.ratio, row.lo, row.hi,
                            row.kind, int(row.n), FACTOR) for row in ok.itertuples()]


def pair_label(engine_a: str, engine_b: str) -> str:
    return f"{setup_label(CLAIM[0], engine_a)} / {setup_label(CLAIM[1], engine_b)}"


def pair_text(row) -> str:
    """'PyTorch eager / TensorFlow eager on \\texttt{k3}' (LaTeX)."""
    return f"{escape(pair_label(row.engine_a, row.engine_b))} on {tt(row.arch)}"


def claim_values(run: Run) -> dict[str, str]:
    """The claim's settings, how many pairs were compared and held either way, and the smallest and largest ratio."""
    c = claims(run)
    ok = c[c["status"] == "ok"]
    held = ok[ok["outcome"].isin([Outcome.AT_LEAST])]
    slower, faster = int((held["ratio"] > 1).sum()), int((held["ratio"] < 1).sum())
    values = {f"{NAME}/claim/factor": f"{FACTOR:g}", f"{NAME}/claim/resamples": str(RESAMPLES),
              f"{NAME}/claim/seed": str(SEED), f"{NAME}/claim/level": f"{LEVEL * 100:.0f}",
              f"{NAME}/claim/launches": flag(len(ok) and ok["kind"].isin([Kind.LAUNCHES]).all()),
              f"{NAME}/claim/bootstrap": flag(len(ok) and ok["kind"].isin([Kind.BOOTSTRAP]).all()),
              f"{NAME}/claim/kind": kind_phrase(ok["kind"]),
              f"{NAME}/claim/less-than": str(int(ok["outcome"].isin([Outcome.LESS_THAN]).sum())),
              f"{NAME}/claim/undecided": str(int(ok["outcome"].isin([Outcome.UNDECIDED]).sum())),
              f"{NAME}/claim/launches-min": str(int(ok["n"].min())) if len(ok) else "0",
              f"{NAME}/claim/tested": "1" if len(ok) else "0", f"{NAME}/claim/pairs": str(len(ok)),
              f"{NAME}/claim/failed": str(int((c["status"] == "failed").sum())),
              f"{NAME}/claim/any-failed": flag((c["status"] == "failed").any()),
              f"{NAME}/claim/unresolved": str(int((c["status"] == NOT_RESOLVED).sum())),
              f"{NAME}/claim/any-unresolved": flag((c["status"] == NOT_RESOLVED).any()),
              f"{NAME}/claim/holds": str(slower + faster),
              f"{NAME}/claim/holds-share": share_words(slower + faster, len(ok), "engine pair"),
              f"{NAME}/claim/holds-any": "1" if slower + faster else "0",
              f"{NAME}/claim/holds-all": "1" if len(ok) and slower + faster == len(ok) else "0",
              f"{NAME}/claim/first-slower": str(slower), f"{NAME}/claim/first-faster": str(faster),
              f"{NAME}/claim/first": escape(framework_name(CLAIM[0])),
              f"{NAME}/claim/second": escape(framework_name(CLAIM[1]))}
    less, undecided = (int(ok["outcome"].isin([o]).sum()) for o in (Outcome.LESS_THAN, Outcome.UNDECIDED))
    sides = [(framework_name(f), n) for f, n in zip(CLAIM, (faster, slower)) if n]  # who is several times faster
    values[f"{NAME}/claim/sides"] = words(
        f"in {n} {'of them ' if i == 0 else ''}{escape(name)}'s{' backward pass is several times faster' * (i == 0)}"
        for i, (name, n) in enumerate(sides)) or "in none"
    others = [f"{less} lie wholly inside {FACTOR:g}$\\times$ either way"] * bool(less) \
        + [f"{undecided} {'is' if undecided == 1 else 'are'} undecided"] * bool(undecided)
    values[f"{NAME}/claim/others"] = words(others) or "none"
    values[f"{NAME}/claim/ratio-span"] = span(ok["ratio"])
    values[f"{NAME}/claim/scope"] = scope(ok)
    if len(ok):
        for end, row in (("min", ok.loc[ok["ratio"].idxmin()]), ("max", ok.loc[ok["ratio"].idxmax()])):
            key = f"{NAME}/claim/ratio-{end}"
            values |= {key: ratio(row.ratio), f"{key}-lo": ratio(row.lo), f"{key}-hi": ratio(row.hi),
                       f"{key}-pair": pair_text(row), f"{key}-kind": kind_phrase([row.kind])}
    return values


def scope(pairs: pd.DataFrame) -> str:
    """Which networks and batches the compared pairs cover: 'on \\texttt{k3} at batch 64'."""
    if pairs.empty:
        return ""
    batches = sorted({int(c.rsplit("-b", 1)[1]) for c in pairs["config"] if "-b" in c})
    at = f" at batch{'es' if len(batches) > 1 else ''} {words(str(b) for b in batches)}" if batches else ""
    return f"on {words(tt(a) for a in dict.fromkeys(pairs['arch']))}{at}"


def interval(r: float, lo: float, hi: float) -> str:
    return bracketed(r, lo, hi)


def arch_labels(rows: pd.DataFrame) -> pd.Series:
    """The arch, plus its config where the study ran more than one."""
    return rows["arch"] + " " + rows["config"] if rows["config"].nunique() > 1 else rows["arch"]


def claim_table(run: Run) -> str:
    first, second = (escape(framework_name(f)) for f in CLAIM)
    c = claims(run)
    kinds = c.loc[c["status"] == "ok", "kind"]
    marks = [mark for mark, shown in ((r"\emph{failed}: one of the two cells failed", "failed"),
                                      (rf"\emph{{{NOT_RESOLVED}}}: a derived backward pass the data cannot tell apart "
                                       "from zero", NOT_RESOLVED)) if len(c) and (c["status"] == shown).any()]
    networks = "per engine pair and network" if len(c) and c["arch"].nunique() > 1 else "per engine pair"
    caption = (f"Backward time of {first} over {second}, {networks}: {estimate_phrase(kinds)} "
               f"[{LEVEL * 100:.0f}\\,\\% {kind_phrase(kinds)}]. Bold: the whole "
               f"interval lies at or beyond {FACTOR:g}$\\times$ or at or below 1/{FACTOR:g}."
               + "".join(f" {mark}." for mark in marks))
    if c.empty:
        return placeholder(caption, "tab:claim", f"This run has no {first} and {second} cells of the {NAME} study.")
    text = [rf"\emph{{{s}}}" if s != "ok" else
            (rf"\textbf{{{interval(r, lo, hi)}}}" if o == Outcome.AT_LEAST else interval(r, lo, hi))
            for s, r, lo, hi, o in zip(c["status"], c["ratio"], c["lo"], c["hi"], c["outcome"])]
    c = c.assign(Pair=[pair_label(a, b) for a, b in zip(c["engine_a"], c["engine_b"])], Network=arch_labels(c),
                 text=[flagged(t, n) for t, n in zip(text, c["noisy"])])
    table = c.pivot_table(index="Pair", columns="Network", values="text", aggfunc="first", sort=False)
    table = table.fillna("--").reset_index().rename_axis(columns=None)
    df = run.tidy
    note = noisy_note(df[(df["study"] == NAME) & (df["phase"] == "backward")], iqr_shown=False)
    return booktabs(table, caption, "tab:claim", "l" + "r" * (len(table.columns) - 1), raw=tuple(table.columns[1:]),
                    size=r"\footnotesize", note=note)

"""The claim that one framework's backward pass is several times faster than the other's: backward ratios of every
PyTorch engine over every TensorFlow engine on the engines study's networks, with percentile bootstrap intervals from
the cells' raw samples, a table and a verdict whose words come from the numbers."""
from __future__ import annotations

import numpy as np
import pandas as pd

from convbench.analysis.engines import STUDY, ordered, study_cells
from convbench.analysis.tables import booktabs, escape, flagged, noisy_note, placeholder, ratio, tt, words
from convbench.analysis.tidy import framework_name, setup_label

CLAIM = ("torch", "tensorflow")  # the claim's ratio: backward time of the first over the second
FACTOR = 2.0  # "several times" means at least this factor, either way
RESAMPLES, SEED, LEVEL = 2000, 0, 0.95


def bootstrap_ratio(a, b, resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL):
    """median(a) / median(b) and its percentile bootstrap interval: both samples resampled with replacement."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    rng = np.random.default_rng(seed)
    ratios = (np.median(rng.choice(a, (resamples, len(a))), axis=1)
              / np.median(rng.choice(b, (resamples, len(b))), axis=1))
    lo, hi = np.percentile(ratios, [50 * (1 - level), 50 * (1 + level)])
    return float(np.median(a) / np.median(b)), float(lo), float(hi)


def claims(df: pd.DataFrame, samples: pd.DataFrame, resamples: int = RESAMPLES, seed: int = SEED) -> pd.DataFrame:
    """Per engine pair (PyTorch engine x TensorFlow engine) and arch of the engines study: the backward ratio
    PyTorch/TensorFlow with its bootstrap interval from the cells' raw backward samples (seeds pooled).

    status is 'ok' or 'failed' (either cell failed); holds is 'first-slower' where the whole interval lies at or beyond
    FACTOR, 'first-faster' where it lies at or below 1/FACTOR, else ''.
    """
    cells = study_cells(df)
    backward = samples[samples["phase"] == "backward"] if len(samples) else samples
    rows = []
    for (arch, config), group in cells.groupby(["arch", "config"], sort=False):
        first, second = (group[group["framework"] == f] for f in CLAIM)
        for e1 in ordered(first["engine"]):
            for e2 in ordered(second["engine"]):
                a, b = first[first["engine"] == e1], second[second["engine"] == e2]
                row = {"arch": arch, "config": config, "engine_a": e1, "engine_b": e2, "status": "failed",
                       "ratio": np.nan, "lo": np.nan, "hi": np.nan, "holds": "",
                       "noisy": bool(df[df["cell_id"].isin([*a["cell_id"], *b["cell_id"]]) & (df["phase"] == "backward")
                                        ]["noisy"].fillna(False).any())}
                xa = backward[backward["cell_id"].isin(a["cell_id"])]["value"]
                xb = backward[backward["cell_id"].isin(b["cell_id"])]["value"]
                if (a["status"] == "ok").all() and (b["status"] == "ok").all() and len(xa) and len(xb):
                    r, lo, hi = bootstrap_ratio(xa, xb, resamples, seed)
                    holds = "first-slower" if lo >= FACTOR else "first-faster" if hi <= 1 / FACTOR else ""
                    row.update(status="ok", ratio=r, lo=lo, hi=hi, holds=holds)
                rows.append(row)
    return pd.DataFrame(rows, columns=["arch", "config", "engine_a", "engine_b", "status", "ratio", "lo", "hi",
                                       "holds", "noisy"])


def pair_label(engine_a: str, engine_b: str) -> str:
    return f"{setup_label(CLAIM[0], engine_a)} / {setup_label(CLAIM[1], engine_b)}"


def arch_labels(rows: pd.DataFrame) -> pd.Series:
    """The arch, plus its config where the study ran more than one."""
    return rows["arch"] + " " + rows["config"] if rows["config"].nunique() > 1 else rows["arch"]


def interval(r: float, lo: float, hi: float) -> str:
    return f"{ratio(r)} [{ratio(lo)}, {ratio(hi)}]"


def claim_table(df: pd.DataFrame, samples: pd.DataFrame) -> str:
    first, second = (escape(framework_name(f)) for f in CLAIM)
    caption = (f"Backward time of {first} over {second}, per engine pair and network of the {STUDY} study: ratio of "
               f"the medians [{LEVEL * 100:.0f}\\,\\% percentile bootstrap interval, {RESAMPLES} resamples of each "
               f"cell's raw backward samples, seed {SEED}]. Bold: the whole interval lies at or beyond "
               f"{FACTOR:g}$\\times$ or at or below 1/{FACTOR:g}, the ``several times'' of the claim. "
               f"\\emph{{failed}}: one of the two cells failed.")
    c = claims(df, samples)
    if c.empty:
        return placeholder(caption, "tab:claim", f"This run has no {first} and {second} cells of the {STUDY} study.")
    text = [r"\emph{failed}" if s != "ok" else (rf"\textbf{{{interval(r, lo, hi)}}}" if h else interval(r, lo, hi))
            for s, r, lo, hi, h in zip(c["status"], c["ratio"], c["lo"], c["hi"], c["holds"])]
    c = c.assign(Pair=[pair_label(a, b) for a, b in zip(c["engine_a"], c["engine_b"])], Network=arch_labels(c),
                 text=[flagged(t, n) for t, n in zip(text, c["noisy"])])
    table = c.pivot_table(index="Pair", columns="Network", values="text", aggfunc="first", sort=False)
    table = table.fillna("--").reset_index().rename_axis(columns=None)
    note = noisy_note(df[(df["study"] == STUDY) & (df["phase"] == "backward")])
    return booktabs(table, caption, "tab:claim", "l" + "r" * (len(table.columns) - 1), raw=tuple(table.columns[1:]),
                    size=r"\footnotesize", note=note)


def quote(row) -> str:
    return f"{ratio(row.ratio)}$\\times$ ({LEVEL * 100:.0f}\\,\\% CI {ratio(row.lo)}--{ratio(row.hi)})"


def pair_words(row) -> str:
    return f"{escape(pair_label(row.engine_a, row.engine_b))} on {tt(row.arch)}"


def claim_values(c: pd.DataFrame) -> dict[str, str]:
    first, second = (escape(framework_name(f)) for f in CLAIM)
    values = {"engines/claim/factor": f"{FACTOR:g}", "engines/claim/resamples": str(RESAMPLES),
              "engines/claim/seed": str(SEED), "engines/claim/level": f"{LEVEL * 100:.0f}"}
    ok = c[c["status"] == "ok"] if len(c) else c
    for row in ok.itertuples():
        config = f"-{row.config}" if c["config"].nunique() > 1 else ""
        key = f"engines/claim/{CLAIM[0]}-{row.engine_a}-over-{CLAIM[1]}-{row.engine_b}/{row.arch}{config}"
        values |= {f"{key}/ratio": ratio(row.ratio), f"{key}/ratio-lo": ratio(row.lo), f"{key}/ratio-hi": ratio(row.hi)}
    if ok.empty:
        values["engines/claim/sentence"] = (
            f"This run has no pair of a {first} and a {second} cell of the {STUDY} study that both succeeded, so it "
            f"does not test the claim.")
        return values
    low, high = ok.loc[ok["ratio"].idxmin()], ok.loc[ok["ratio"].idxmax()]
    values |= {"engines/claim/ratio-min": ratio(low.ratio), "engines/claim/ratio-max": ratio(high.ratio)}
    text = [f"We call one backward pass several times faster than another when the other takes at least "
            f"{FACTOR:g}$\\times$ as long, and count the claim as holding for a pair of cells only where the whole "
            f"{LEVEL * 100:.0f}\\,\\% interval of the ratio lies at or beyond {FACTOR:g}$\\times$ (or at or below "
            f"1/{FACTOR:g}). Over the {len(ok)} pairs of a {first} and a {second} engine timed on the same network, "
            f"{first}'s backward time over {second}'s ranged from {quote(low)} for {pair_words(low)} to "
            f"{quote(high)} for {pair_words(high)}."]
    held = ok[ok["holds"] != ""]
    for holds, faster in [("first-slower", second), ("first-faster", first)]:
        rows = held[held["holds"] == holds]
        if len(rows):  # named, not quoted: Table tab:claim gives every ratio with its interval, in bold
            pairs = rows.groupby(["engine_a", "engine_b"], sort=False)["arch"]
            text.append(f"The claim holds, with {faster}'s backward pass several times faster, for {len(rows)} of the "
                        f"{len(ok)} pairs (bold in Table~\\ref{{tab:claim}}): " + "; ".join(
                            f"{escape(pair_label(a, b))} on {words(tt(x) for x in archs)}" for (a, b), archs in pairs)
                        + ".")
    if held.empty:
        text.append(f"No pair's interval lies wholly at or beyond {FACTOR:g}$\\times$ in either direction, so the "
                    f"claim holds for none of them.")
    elif len(held) < len(ok):
        text.append(f"It does not hold for the other {len(ok) - len(held)} pairs.")
    failed = c[c["status"] == "failed"]
    if len(failed):
        text.append(f"{len(failed)} pairs were not compared because one of their cells failed.")
    values["engines/claim/sentence"] = " ".join(text)
    return values

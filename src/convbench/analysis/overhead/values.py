"""The overhead study's numbers: the sweep's overhead a and per-sample cost b per phase, where the backward claim holds
in (engine, batch) space, and one verdict per engine pair and batch."""
from __future__ import annotations

import numpy as np
import pandas as pd

from convbench.analysis.formatting import escape, flag, words
from convbench.analysis.overhead.fit import CLAIM, claim_space
from convbench.analysis.stats import Outcome, Verdict, several_verdict
from convbench.analysis.study import Run
from convbench.analysis.sweep import NAME, SHOWN, fits, label, num, sweep_times


def values(run: Run) -> dict[str, str]:
    """The sweep's batches and network; per shown phase the smallest and largest overhead a and per-sample cost b over
    the setups (with the setup); where the claim holds in (engine, batch) space."""
    times, f = sweep_times(run.tidy), fits(run.tidy)
    values = {f"{NAME}/batches": words(f"{b:.0f}" for b in sorted(times["batch_size"].unique())) or "--",
              f"{NAME}/archs": words(escape(a) for a in dict.fromkeys(times["arch"])) or "--",
              f"{NAME}/setups": str(times["setup"].nunique()), f"{NAME}/fitted": flag(f["a"].notna().any())}
    for phase in SHOWN:
        rows = f[(f["phase"] == phase)].dropna(subset=["a"])
        for name, scale, unit in (("a", 1e3, "ms"), ("b", 1e6, "us")):
            for end, pick in (("min", "idxmin"), ("max", "idxmax")):
                key = f"{NAME}/{phase}/{name}-{end}"
                if rows.empty:
                    values |= {f"{key}-{unit}": "--", f"{key}-lo": "--", f"{key}-hi": "--", f"{key}-setup": "--",
                               f"{key}-zero": ""}
                    continue
                r = rows.loc[getattr(rows[name], pick)()]
                lo, hi = num(r[f"{name}_lo"] * scale), num(r[f"{name}_hi"] * scale)
                values |= {f"{key}-{unit}": num(r[name] * scale), f"{key}-lo": lo, f"{key}-hi": hi,
                           f"{key}-setup": escape(label(r)), f"{key}-zero": zero_note(r[f"{name}_lo"], r[f"{name}_hi"],
                                                                                      lo, hi)}
    c = claim_space(run.tidy, run.samples)
    holds = c[c["outcome"].isin([Outcome.AT_LEAST])]
    largest, smallest = (c["batch_size"].max(), c["batch_size"].min()) if len(c) else (np.nan, np.nan)
    return values | {
        f"{NAME}/claim/tested": flag(len(c)), f"{NAME}/claim/points": str(int(c["resolved"].sum())),
        f"{NAME}/claim/holds": str(len(holds)), f"{NAME}/claim/holds-any": flag(len(holds)),
        f"{NAME}/claim/holds-batches": words(f"{b:.0f}" for b in sorted(holds["batch_size"].unique())) or "none",
        f"{NAME}/claim/smallest-batch": f"{smallest:.0f}" if len(c) else "--",
        f"{NAME}/claim/largest-batch": f"{largest:.0f}" if len(c) else "--",
        f"{NAME}/claim/holds-at-smallest": str(int((holds["batch_size"] == smallest).sum())),
        f"{NAME}/claim/holds-at-largest": str(int((holds["batch_size"] == largest).sum())),
        f"{NAME}/claim/holds-by-batch": by_batch(holds["batch_size"]),
        f"{NAME}/claim/pairs": str(len(c[["engine_a", "engine_b", "arch", "image_size"]].drop_duplicates()))}


def verdicts(run: Run) -> list[Verdict]:
    """One Verdict per engine pair and batch where the backward passes are resolved (keys
    overhead/claim/<torch-e>-over-<tensorflow-e>/<arch>-s<size>-b<batch>/ratio)."""
    c = claim_space(run.tidy, run.samples)
    return [several_verdict(f"{NAME}/claim/{CLAIM[0]}-{r.engine_a}-over-{CLAIM[1]}-{r.engine_b}/{r.arch}-"
                            f"s{r.image_size:.0f}-b{r.batch_size:.0f}/ratio", f"{CLAIM[0]}-{r.engine_a}",
                            f"{CLAIM[1]}-{r.engine_b}", f"backward time on {r.arch} at batch {r.batch_size:.0f}",
                            r.ratio, r.lo, r.hi, r.kind, int(r.n)) for r in c.itertuples() if r.resolved]


def ran(run: Run) -> bool:
    return not sweep_times(run.tidy).empty


def by_batch(batches) -> str:
    """How many engine pairs the claim held for at each batch where it held: '2 engine pairs at batch 1, 2 at batch
    16 and 1 at batch 256' (every batch with a pair, so that the counts add up to the total); 'none'."""
    counts = sorted(pd.Series(batches).value_counts().items())
    return words(f"{n} engine pair{'' if n == 1 else 's'} at batch {b:.0f}" if i == 0 else f"{n} at batch {b:.0f}"
                 for i, (b, n) in enumerate(counts)) or "none"


def zero_note(lo: float, hi: float, lo_text: str, hi_text: str) -> str:
    """', whose interval (lo to hi) includes 0' where a fitted term cannot be told from nothing, else '': the text
    then does not state it as a measured cost."""
    return f", whose interval ({lo_text} to {hi_text}) includes 0" if lo <= 0 <= hi else ""

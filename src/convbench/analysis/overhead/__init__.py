"""The overhead study: one network timed at several batches in every engine, to tell the per-step overhead (launching
operations, Python, the framework's dispatch) from the per-sample cost (arithmetic). A line a + b x batch per engine and
phase with intervals on a and b, the figure of time against batch with the fits, the table of a and b (all three
convbench.analysis.sweep, which a reference GPU run's sweep shares), and the backward claim of the engines study at
every batch: where in (engine, batch) space one framework's backward pass is several times faster than the other's."""
from __future__ import annotations

import numpy as np

from convbench.analysis.formatting import escape, flag, kind_phrase, ratio, setup_label, words
from convbench.analysis.latex import booktabs, placeholder
from convbench.analysis.overhead.fit import CLAIM, claim_space
from convbench.analysis.stats import LEVEL, SEVERAL, Outcome, Verdict, several_verdict
from convbench.analysis.study import Figure, Run, Study, Table
from convbench.analysis.sweep import NAME, SHOWN, draw_sweep, fit_line, fit_table, fits, label, num, sweep_times


def claim_table(run: Run) -> str:
    c = claim_space(run.tidy, run.samples)
    caption = (f"The backward claim at every batch of the sweep: backward time of PyTorch over TensorFlow per engine "
               f"pair, ratio of the medians [{LEVEL * 100:.0f}\\,\\% {kind_phrase(c['kind'])}]. Bold: several times "
               f"($\\geq {SEVERAL:g}\\times$) faster or slower. \\emph{{not resolved}}: a derived backward pass (a "
               f"difference of two graph programs) that the data cannot tell from zero.")
    if c.empty:
        return placeholder(caption, "tab:overhead-claim", "This run has no PyTorch and TensorFlow overhead cells.")
    text = [r"\emph{not resolved}" if not ok else
            rf"\textbf{{{ratio(r)} [{ratio(lo)}, {ratio(hi)}]}}" if o == Outcome.AT_LEAST else
            f"{ratio(r)} [{ratio(lo)}, {ratio(hi)}]"
            for r, lo, hi, o, ok in zip(c["ratio"], c["lo"], c["hi"], c["outcome"], c["resolved"])]
    c = c.assign(Pair=[f"{setup_label(CLAIM[0], a)} / {setup_label(CLAIM[1], b)}"
                       + (f" ({arch}, {size:.0f})" if c[["arch", "image_size"]].drop_duplicates().shape[0] > 1 else "")
                       for a, b, arch, size in zip(c["engine_a"], c["engine_b"], c["arch"], c["image_size"])],
                 Batch=c["batch_size"].map(lambda b: f"batch {b:.0f}"), text=text)
    table = c.pivot_table(index="Pair", columns="Batch", values="text", aggfunc="first", sort=False)
    table = table.fillna("--").reset_index().rename_axis(columns=None)
    return booktabs(table, caption, "tab:overhead-claim", "l" + "r" * (len(table.columns) - 1),
                    raw=tuple(table.columns[1:]), size=r"\scriptsize", colsep="3pt")


def overhead_values(run: Run) -> dict[str, str]:
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
                    values |= {f"{key}-{unit}": "--", f"{key}-lo": "--", f"{key}-hi": "--", f"{key}-setup": "--"}
                    continue
                r = rows.loc[getattr(rows[name], pick)()]
                values |= {f"{key}-{unit}": num(r[name] * scale), f"{key}-lo": num(r[f"{name}_lo"] * scale),
                           f"{key}-hi": num(r[f"{name}_hi"] * scale), f"{key}-setup": escape(label(r))}
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
        f"{NAME}/claim/pairs": str(len(c[["engine_a", "engine_b", "arch", "image_size"]].drop_duplicates()))}


def overhead_verdicts(run: Run) -> list[Verdict]:
    """One Verdict per engine pair and batch where the backward passes are resolved (keys
    overhead/claim/<torch-e>-over-<tensorflow-e>/<arch>-s<size>-b<batch>/ratio)."""
    c = claim_space(run.tidy, run.samples)
    return [several_verdict(f"{NAME}/claim/{CLAIM[0]}-{r.engine_a}-over-{CLAIM[1]}-{r.engine_b}/{r.arch}-"
                            f"s{r.image_size:.0f}-b{r.batch_size:.0f}/ratio", f"{CLAIM[0]}-{r.engine_a}",
                            f"{CLAIM[1]}-{r.engine_b}", f"backward time on {r.arch} at batch {r.batch_size:.0f}",
                            r.ratio, r.lo, r.hi, r.kind, int(r.n)) for r in c.itertuples() if r.resolved]


STUDY = Study(
    NAME, "Overhead against per-sample cost",
    figures=(Figure("overhead", draw_sweep,
                    "Overhead against per-sample cost: time of the backward pass and of the whole step against the "
                    "batch, log-log, per engine, with the fitted a + b x batch."),),
    tables=(Table("overhead", fit_table), Table("overhead-claim", claim_table)),
    values=overhead_values,
    verdicts=overhead_verdicts,
    ran=lambda run: not sweep_times(run.tidy).empty,
)

__all__ = ["STUDY", "fit_line"]

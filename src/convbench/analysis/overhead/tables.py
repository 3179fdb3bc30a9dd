"""The overhead study's table of the backward claim at every batch of the sweep (the fit table is sweep.fit_table)."""
from __future__ import annotations

from convbench.analysis.formatting import bracketed, estimate_phrase, kind_phrase, setup_label
from convbench.analysis.latex import booktabs, placeholder
from convbench.analysis.overhead.fit import CLAIM, claim_space
from convbench.analysis.stats import LEVEL, SEVERAL, Outcome
from convbench.analysis.study import Run


def claim_table(run: Run) -> str:
    c = claim_space(run.tidy, run.samples)
    caption = (f"The backward claim at every batch of the sweep: backward time of PyTorch over TensorFlow per engine "
               f"pair, {estimate_phrase(c['kind'])} [{LEVEL * 100:.0f}\\,\\% {kind_phrase(c['kind'])}]. "
               f"Bold: the whole interval lies at or beyond {SEVERAL:g}$\\times$ or at or below 1/{SEVERAL:g} "
               f"(several times faster or slower). \\emph{{not resolved}}: a derived backward pass (a "
               f"difference of two graph programs) that the data cannot tell from zero.")
    if c.empty:
        return placeholder(caption, "tab:overhead-claim", "This run has no PyTorch and TensorFlow overhead cells.")
    text = [r"\emph{not resolved}" if not ok else
            rf"\textbf{{{bracketed(r, lo, hi)}}}" if o == Outcome.AT_LEAST else bracketed(r, lo, hi)
            for r, lo, hi, o, ok in zip(c["ratio"], c["lo"], c["hi"], c["outcome"], c["resolved"])]
    c = c.assign(Pair=[f"{setup_label(CLAIM[0], a)} / {setup_label(CLAIM[1], b)}"
                       + (f" ({arch}, {size:.0f})" if c[["arch", "image_size"]].drop_duplicates().shape[0] > 1 else "")
                       for a, b, arch, size in zip(c["engine_a"], c["engine_b"], c["arch"], c["image_size"])],
                 Batch=c["batch_size"].map(lambda b: f"batch {b:.0f}"), text=text)
    table = c.pivot_table(index="Pair", columns="Batch", values="text", aggfunc="first", sort=False)
    table = table.fillna("--").reset_index().rename_axis(columns=None)
    return booktabs(table, caption, "tab:overhead-claim", "l" + "r" * (len(table.columns) - 1),
                    raw=tuple(table.columns[1:]), size=r"\scriptsize", colsep="3pt")

"""The overhead study's claim: that one framework's backward pass is several times faster than the other's, at every
batch of the sweep, so that it can be read in (engine, batch) space (the sweep's fit: convbench.analysis.sweep)."""
from __future__ import annotations

import pandas as pd

from convbench.analysis.backward_claim import CLAIM, backward_ratio
from convbench.analysis.formatting import setup_rank
from convbench.analysis.stats import decide_several
from convbench.analysis.sweep import NAME


def claim_space(df: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """Per arch x image size x batch and PyTorch engine x TensorFlow engine: the backward ratio PyTorch/TensorFlow with
    its interval (backward_claim.backward_ratio: launch-level medians where the cells ran in several launches, else
    a bootstrap of the raw samples), its kind and its outcome against 'several times' (stats.decide_several; None
    where a derived backward is not resolved)."""
    columns = ["arch", "image_size", "batch_size", "engine_a", "engine_b", "ratio", "lo", "hi", "outcome", "n", "kind",
               "resolved"]
    cells = df[(df["study"] == NAME) & (df["task"] == "speed") & (df["status"] == "ok")] if len(df) else df
    if cells.empty:
        return pd.DataFrame(columns=columns)
    cells = cells.drop_duplicates("cell_id")
    rows = []
    for (arch, size, batch), group in cells.groupby(["arch", "image_size", "batch_size"], sort=True):
        first, second = (group[group["framework"] == f] for f in CLAIM)
        for i, a in enumerate(first.itertuples()):
            for j, b in enumerate(second.itertuples()):
                found = backward_ratio(df, samples, first.iloc[[i]], second.iloc[[j]])
                if found:
                    lo, hi, clear = found["lo"], found["hi"], found["resolved"]
                    rows.append([arch, size, batch, a.engine, b.engine, found["ratio"], lo, hi,
                                 decide_several(lo, hi) if clear else None, found["n"], found["kind"], clear])
    out = pd.DataFrame(rows, columns=columns)
    rank = out["engine_a"].map(lambda e: setup_rank(f"{CLAIM[0]}-{e}")) + out["engine_b"].map(
        lambda e: setup_rank(f"{CLAIM[1]}-{e}"))
    return out.assign(rank=rank).sort_values(["arch", "image_size", "rank", "batch_size"]).drop(columns="rank")

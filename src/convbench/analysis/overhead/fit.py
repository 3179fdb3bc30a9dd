"""The overhead study's claim: that one framework's backward pass is several times faster than the other's, at every
batch of the sweep, so that it can be read in (engine, batch) space (the sweep's fit: convbench.analysis.sweep)."""
from __future__ import annotations

import pandas as pd

from convbench.analysis.formatting import setup_rank
from convbench.analysis.stats import decide_several, time_interval
from convbench.analysis.sweep import NAME
from convbench.analysis.tidy import is_resolved, launch_medians

CLAIM = ("torch", "tensorflow")  # the claim's ratio: backward time of the first over the second


def claim_space(df: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """Per arch x image size x batch and PyTorch engine x TensorFlow engine: the backward ratio PyTorch/TensorFlow with
    its interval (stats.time_interval: launch-level medians where the cells ran in several launches, else a bootstrap
    of the raw samples), its kind and its outcome against 'several times' (stats.decide_several; None where a derived
    backward is not resolved)."""
    columns = ["arch", "image_size", "batch_size", "engine_a", "engine_b", "ratio", "lo", "hi", "outcome", "n", "kind",
               "resolved"]
    cells = df[(df["study"] == NAME) & (df["task"] == "speed") & (df["status"] == "ok")] if len(df) else df
    if cells.empty:
        return pd.DataFrame(columns=columns)
    cells = cells.drop_duplicates("cell_id")
    backward = samples[samples["phase"] == "backward"]
    rows = []
    for (arch, size, batch), group in cells.groupby(["arch", "image_size", "batch_size"], sort=True):
        first, second = (group[group["framework"] == f] for f in CLAIM)
        for a in first.itertuples():
            for b in second.itertuples():
                launches = [launch_medians(df, "backward", cell_id=c.cell_id) for c in (a, b)]
                xs = [backward[backward["cell_id"] == c.cell_id]["value"] for c in (a, b)]
                found = time_interval(*launches, *xs)
                # a derived backward (graph engines: a difference of two programs) the data cannot tell from zero, as
                # the tidy table decided it for every study (tidy.resolve)
                clear = all(is_resolved(df, c.cell_id, "backward") for c in (a, b))
                if found:
                    r, lo, hi, n, kind = found
                    rows.append([arch, size, batch, a.engine, b.engine, r, lo, hi,
                                 decide_several(lo, hi) if clear else None, n, kind, clear])
    out = pd.DataFrame(rows, columns=columns)
    rank = out["engine_a"].map(lambda e: setup_rank(f"{CLAIM[0]}-{e}")) + out["engine_b"].map(
        lambda e: setup_rank(f"{CLAIM[1]}-{e}"))
    return out.assign(rank=rank).sort_values(["arch", "image_size", "rank", "batch_size"]).drop(columns="rank")

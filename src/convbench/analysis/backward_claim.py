"""The backward claim, computed once for every study that tests it (engines: per engine pair and network; overhead:
at every batch of its sweep): the backward time of one framework's cells over the other's, with its interval."""
from __future__ import annotations

import pandas as pd

from convbench.analysis.query import is_resolved, launch_medians
from convbench.analysis.stats import RESAMPLES, SEED, time_interval

CLAIM = ("torch", "tensorflow")  # the claim's ratio: backward time of the first over the second


def backward_ratio(df: pd.DataFrame, samples: pd.DataFrame, first: pd.DataFrame, second: pd.DataFrame,
                   resamples: int = RESAMPLES, seed: int = SEED) -> dict | None:
    """The backward time of the cells `first` (tidy rows of one setup; seeds pooled) over those of `second`:
    ratio, lo, hi, n, kind (stats.time_interval: over the launch-level medians where the cells ran in several
    launches, else a bootstrap of the raw samples), and resolved: False where a cell's derived backward (graph
    engines: a difference of two programs) is not told apart from zero, as the tidy table decided it for every study
    (tidy.resolve). None without an interval."""
    backward = samples[samples["phase"] == "backward"] if len(samples) else samples
    ids = [list(dict.fromkeys(cells["cell_id"])) for cells in (first, second)]
    found = time_interval(*(launch_medians(df, "backward", cell_id=i) for i in ids),
                          *(backward[backward["cell_id"].isin(i)]["value"] if len(backward) else [] for i in ids),
                          resamples=resamples, seed=seed)
    if not found:
        return None
    clear = all(is_resolved(df, cell_id, "backward") for cell_id in ids[0] + ids[1])
    return dict(zip(("ratio", "lo", "hi", "n", "kind"), found)) | {"resolved": clear}

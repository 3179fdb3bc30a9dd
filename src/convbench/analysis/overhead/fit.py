"""The overhead study's numbers: step time = a + b x batch per engine and phase (a: the per-step overhead, b: the
per-sample cost), and the claim that one framework's backward pass is several times faster than the other's at every
batch of the sweep, so that it can be read in (engine, batch) space."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize

from convbench.analysis.formatting import setup_rank, several_word
from convbench.analysis.stats import LEVEL, resolved, t_quantile, time_interval
from convbench.analysis.tidy import launch_medians, summarise

NAME = "overhead"
PHASES = ["forward", "backward", "optimizer", "step"]
CLAIM = ("torch", "tensorflow")  # the claim's ratio: backward time of the first over the second
KEYS = ["setup", "framework", "engine", "arch", "image_size"]


def sweep_times(df: pd.DataFrame) -> pd.DataFrame:
    """Median time per setup x arch x image size x batch x phase of the study's ok speed cells (seeds pooled)."""
    rows = df[(df["study"] == NAME) & (df["task"] == "speed")] if len(df) else df
    times = summarise(rows, "time") if len(rows) else pd.DataFrame()
    if times.empty:
        return pd.DataFrame(columns=[*KEYS, "batch_size", "phase", "value", "iqr"])
    times = times[times["phase"].isin(PHASES)]
    return times[[*KEYS, "batch_size", "phase", "value", "iqr"]].sort_values(
        ["setup", "arch", "image_size", "phase", "batch_size"], key=lambda c: c.map(setup_rank) if c.name == "setup"
        else c).reset_index(drop=True)


def fit_line(batch, seconds, level: float = LEVEL) -> dict:
    """seconds = a + b x batch by weighted least squares, every point weighted as if its relative error were the same
    (sigma proportional to the time: a step at batch 256 is 100 times one at batch 1, and its noise too), with t
    intervals (n - 2 degrees of freedom) on a and b from the covariance scaled by the residuals (scipy's curve_fit)."""
    x, y = np.asarray(batch, float), np.asarray(seconds, float)
    out = dict.fromkeys(["a", "a_lo", "a_hi", "b", "b_lo", "b_hi"], np.nan) | {"n": len(x)}
    if len(x) < 3 or len(set(x)) < 3 or not (y > 0).all():
        return out
    (a, b), cov = optimize.curve_fit(lambda v, a, b: a + b * v, x, y, p0=(y.min(), (y.max() - y.min()) / np.ptp(x)),
                                     sigma=y, absolute_sigma=False)
    half = t_quantile(len(x) - 1, level) * np.sqrt(np.diag(cov))  # t_quantile(n) has n - 1 degrees of freedom
    return out | {"a": a, "a_lo": a - half[0], "a_hi": a + half[0], "b": b, "b_lo": b - half[1], "b_hi": b + half[1]}


def fits(df: pd.DataFrame) -> pd.DataFrame:
    """fit_line per setup x arch x image size x phase over the batches of the sweep."""
    times = sweep_times(df)
    rows = [dict(zip([*KEYS, "phase"], keys)) | fit_line(g["batch_size"], g["value"])
            for keys, g in times.groupby([*KEYS, "phase"], sort=False)]
    return pd.DataFrame(rows, columns=[*KEYS, "phase", "a", "a_lo", "a_hi", "b", "b_lo", "b_hi", "n"])


def claim_space(df: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """Per arch x image size x batch and PyTorch engine x TensorFlow engine: the backward ratio PyTorch/TensorFlow with
    its interval (stats.time_interval: launch-level medians where the cells ran in several launches, else a bootstrap
    of the raw samples) and its word (formatting.several_word: where 'several times' holds)."""
    columns = ["arch", "image_size", "batch_size", "engine_a", "engine_b", "ratio", "lo", "hi", "word", "n", "method",
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
                # a derived backward (graph engines: a difference of two programs) the data cannot tell from zero
                clear = all(c.phase_method != "derived" or resolved(t, x) for c, t, x in zip((a, b), launches, xs))
                if found:
                    r, lo, hi, n, method = found
                    rows.append([arch, size, batch, a.engine, b.engine, r, lo, hi,
                                 several_word(r, lo, hi) if clear else "", n, method, clear])
    out = pd.DataFrame(rows, columns=columns)
    rank = out["engine_a"].map(lambda e: setup_rank(f"{CLAIM[0]}-{e}")) + out["engine_b"].map(
        lambda e: setup_rank(f"{CLAIM[1]}-{e}"))
    return out.assign(rank=rank).sort_values(["arch", "image_size", "rank", "batch_size"]).drop(columns="rank")

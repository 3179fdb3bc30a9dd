"""The engines study's cells and the phases of their steps, with the backward pass split by the layer-wise cells."""
from __future__ import annotations

import numpy as np
import pandas as pd

from convbench.analysis.formatting import setup_label, setup_rank
from convbench.analysis.layerwise import input_fraction, layer_times
from convbench.analysis.query import ARCH_ORDER, summarise, with_config

NAME = "engines"
KEYS = ["setup", "framework", "engine", "arch", "config"]
NOT_RESOLVED = "not resolved"  # printed in place of a derived phase's time that the data cannot resolve


def ordered(engines) -> list[str]:
    """Engines in the tables' order."""
    return sorted(set(engines), key=lambda e: setup_rank(f"-{e}"))


def setup_order(cells: pd.DataFrame) -> list[str]:
    return sorted(set(cells["setup"]), key=setup_rank)


def speed_rows(df: pd.DataFrame) -> pd.DataFrame:
    return df[(df["study"] == NAME) & (df["task"] == "speed")] if len(df) else df


def study_cells(df: pd.DataFrame) -> pd.DataFrame:
    """One row per speed cell of the engines study (failed ones too), in arch order."""
    rows = speed_rows(df)
    if rows.empty:
        return pd.DataFrame(columns=[*df.columns, "config"])
    cells = with_config(rows.drop_duplicates("cell_id"))
    return cells.sort_values([*ARCH_ORDER, "config"], kind="stable")


def engine_phases(df: pd.DataFrame) -> pd.DataFrame:
    """Forward, backward (split into input and weight by input_fraction where the layer cells allow) and optimizer
    medians per setup x arch x config of the engines study, long, with the whole step's median and IQR beside each
    row (step, step_iqr); a failed cell has one row with status 'failed'."""
    columns = [*KEYS, "status", "input_fraction", "phase", "value", "step", "step_iqr"]
    rows = []
    cells = study_cells(df)
    times = summarise(speed_rows(df), "time") if len(cells) else pd.DataFrame(columns=KEYS)
    layers = layer_times(df)
    for keys, group in times.groupby(KEYS, sort=False):
        phase = group.set_index("phase")
        value = phase["value"]
        first = group.iloc[0]
        fraction = input_fraction(first["convs"], first["framework"], first["batch_size"], layers)
        values = {"forward": value.get("forward"), "optimizer": value.get("optimizer")}
        if np.isnan(fraction):
            values["backward"] = value.get("backward")
        else:
            values |= {"backward_input": value.get("backward") * fraction,
                       "backward_weight": value.get("backward") * (1 - fraction)}
        step = (value.get("step"), phase["iqr"].get("step"))
        base = dict(zip(KEYS, keys), status="ok", input_fraction=fraction, step=step[0], step_iqr=step[1])
        rows += [{**base, "phase": p, "value": v} for p, v in values.items() if v is not None]
    timed = pd.MultiIndex.from_frame(times[["setup", "arch", "config"]]) if len(times) else []
    failed = cells[(cells["status"] == "failed")
                   & ~cells.set_index(["setup", "arch", "config"]).index.isin(timed)] if len(cells) else cells
    rows += [{"setup": r.setup, "framework": r.framework, "engine": r.engine, "arch": r.arch, "config": r.config,
              "status": "failed", "input_fraction": np.nan, "phase": None, "value": np.nan}
             for r in failed.itertuples()]
    out = pd.DataFrame(rows, columns=columns)
    return out.assign(Setup=[setup_label(f, e) for f, e in zip(out["framework"], out["engine"])])

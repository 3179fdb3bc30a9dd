"""Questions asked of the tidy table (tidy.py builds it): launch medians, summaries over seeds, the seeds' pairs,
convergence and the cross-framework repeat, and the macro values of times and accuracies that several studies print.
"""
from __future__ import annotations

import pandas as pd

from convbench.analysis.formatting import setup_label, setup_rank
from convbench.analysis.stats import LEVEL, t_interval


def by_setup(column: pd.Series) -> pd.Series:
    """A sort key: the setup column in setup_rank order, other columns as they are."""
    return column.map(setup_rank) if column.name == "setup" else column


def setup_labels(summary: pd.DataFrame) -> pd.Series:
    """'PyTorch eager' per row, plus the config (device, batch) where the rows hold more than one."""
    label = pd.Series([setup_label(f, e) for f, e in zip(summary["framework"], summary["engine"])], index=summary.index)
    return label + " " + summary["config"] if summary["config"].nunique() > 1 else label



def launch_medians(df: pd.DataFrame, phase: str, **where) -> pd.Series:
    """One phase's launch-level medians, indexed by launch: the launch_time rows of the ok cells matching `where`
    (column=value; config as with_config makes it), the median over those cells (seeds) within each launch. Empty
    where the cells ran in one launch."""
    rows = df[(df["metric"] == "launch_time") & (df["phase"] == phase) & (df["status"] == "ok")]
    rows = with_config(rows) if "config" in where else rows
    for column, value in where.items():
        rows = rows[rows[column].isin(value) if isinstance(value, (list, tuple, set, pd.Series)) else
                    rows[column] == value]
    return rows.groupby("launch")["value"].median() if len(rows) else pd.Series(dtype=float)


def launch_count(df: pd.DataFrame) -> int:
    """The fewest launches any timed cell of df ran in: what every interval from launch-level medians rests on at
    least (1 where no cell has launch rows)."""
    rows = df[df["metric"] == "launch_time"] if len(df) and "launch" in df else df.iloc[:0]
    return int(rows.groupby("cell_id")["launch"].nunique().min()) if len(rows) else 1



def is_resolved(df: pd.DataFrame, cell_id: str, phase: str) -> bool:
    """What resolve decided for one cell's phase (True where no ok time row says otherwise)."""
    rows = df.loc[(df["cell_id"] == cell_id) & (df["phase"] == phase) & (df["metric"] == "time"), "resolved"] \
        if "resolved" in df else []
    return not any(r is False or r == False for r in rows if pd.notna(r))  # noqa: E712 (read back from csv)



# A "setup" is what runs the cell (framework + engine); a "config" is where and how big (devices, batch); a train
# cell's data set keeps its runs apart from another data set's (empty for cells that train on none).
SUMMARY_KEYS = ["study", "task", "setup", "framework", "engine", "config", "dataset", "arch", "train_fraction"]
ARCH_ORDER = ["receptive_field", "depth", "pieces", "width", "arch"]


def datasets(df: pd.DataFrame) -> pd.Series:
    """Each row's data set, '' where it has none (a timed cell): a key that groups and pivots keep."""
    found = df["dataset"] if "dataset" in df else pd.Series(None, index=df.index)
    return found.astype(object).where(found.notna(), "")


def with_config(df: pd.DataFrame) -> pd.DataFrame:
    config = df["device"].astype(str) + df["devices"].astype(str) + "-" + df["parallelism"].astype(str) + "-b" + df["batch_size"].astype(str)
    return df.assign(config=config)


def summarise(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Median over the cells (seeds) of each study x setup x config x arch x phase, for one metric.

    iqr is the median of the cells' own IQRs (repeat-to-repeat spread), seeds the number of seeds, noisy whether
    any of the cells was flagged noisy.
    """
    rows = with_config(df[(df["status"] == "ok") & (df["metric"] == metric)])
    if rows.empty:
        return rows.assign(seeds=[])
    first = {c: (c, "first") for c in ["description", "kernel", "depth", "receptive_field", "activation", "pieces",
                                       "width", "maps", "params", "flops", "flops_useful", "in_channels", "image_size",
                                       "train_size", "test_size", "batch_size", "convs", "flops_step", "bytes_step",
                                       "phase_method", "max_iqr_ratio"]}
    out = (rows.groupby(SUMMARY_KEYS + ["phase"], sort=False, dropna=False)
           .agg(value=("value", "median"), iqr=("iqr", "median"), n=("n", "sum"), seeds=("seed", "nunique"),
                noisy=("noisy", "max"), **first)
           .reset_index())
    out = out.sort_values(["study", *ARCH_ORDER, "setup", "config", "train_fraction"], kind="stable", key=by_setup)
    return out.reset_index(drop=True)


def with_scales(df: pd.DataFrame) -> pd.DataFrame:
    """df with the planted scale in the data set's name ('planted, scale 7') where a study trained at several single
    scales (the tracking study's sweep): a summary over seeds then never merges scales."""
    if df.empty or "planted_scale" not in df:
        return df
    single = df["planted_scales"].fillna("").astype(str).str.fullmatch(r"\d+(\.0)?") if "planted_scales" in df \
        else df["planted_scale"].notna()
    sweep = df[single].groupby("study")["planted_scale"].transform("nunique").reindex(df.index).fillna(0) > 1
    named = df["dataset"].astype(object) + ", scale " + df["planted_scale"].map(lambda s: f"{s:.0f}" if pd.notna(s) else "")
    return df.assign(dataset=df["dataset"].astype(object).where(~(single & sweep), named))


def full_data(df: pd.DataFrame) -> pd.DataFrame:
    """The rows at the largest training fraction of their study and task (the whole training split, unless a study
    trained on less), per data set: summaries over seeds never mix training-set sizes."""
    largest = df.groupby(["study", "task", datasets(df)])["train_fraction"].transform("max")
    return df[df["train_fraction"] == largest]


def seed_summary(df: pd.DataFrame, metric: str, level: float = LEVEL) -> pd.DataFrame:
    """Mean over seeds, the half-width of its t interval (ci) and the number of seeds, per study x setup x config x
    arch x training fraction x phase, for one metric."""
    rows = with_config(df[(df["status"] == "ok") & (df["metric"] == metric)])
    keys = SUMMARY_KEYS + ["phase"]
    out = [dict(zip(keys, k)) | dict(zip(["mean", "ci", "seeds"], t_interval(g["value"], level)))
           for k, g in rows.groupby(keys, sort=False, dropna=False)]
    return pd.DataFrame(out, columns=[*keys, "mean", "ci", "seeds"])


def slugs(summary: pd.DataFrame) -> pd.Series:
    """The <setup> part of a macro key for each row of a summary: the setup, plus its config where the study's task
    ran in more than one config, plus its data set where the study's task trained on more than one."""
    many, sets = (summary.groupby(["study", "task"])[c].transform("nunique") > 1 for c in ("config", "dataset"))
    slug = summary["setup"].where(~many, summary["setup"] + "-" + summary["config"])
    return slug.where(~sets, slug + "-" + datasets(summary))


def time_values(df: pd.DataFrame) -> dict[str, str]:
    """Median time of every phase as macro values '<study>/<setup>/<arch>/<phase>-ms', in ms, and its IQR as
    '...-iqr-ms' to the median's precision; df: the tidy rows of the studies wanted."""
    from convbench.analysis.formatting import decimals, ms

    times = summarise(df, "time") if len(df) else pd.DataFrame()
    if times.empty:
        return {}
    values = {}
    for row in times.assign(slug=slugs(times)).itertuples():
        base = f"{row.study}/{row.slug}/{row.arch}/{row.phase}"
        values[f"{base}-ms"] = ms(row.value)
        if pd.notna(row.iqr):
            values[f"{base}-iqr-ms"] = f"{row.iqr * 1e3:.{decimals(row.value * 1e3)}f}"  # the median's precision
    return values


def accuracy_values(df: pd.DataFrame) -> dict[str, str]:
    """Median over seeds, at each study's largest training fraction, of test and train accuracy (percent) and the
    train/test gap (points) as macro values '<study>/<setup>/<arch>/test-accuracy' (train-accuracy, gap); df: the
    tidy rows of the studies wanted."""
    from convbench.analysis.formatting import percent

    values = {}
    for metric in ("test_accuracy", "train_accuracy", "gap"):
        summary = summarise(full_data(df), metric) if len(df) else pd.DataFrame()
        for row in (summary.assign(slug=slugs(summary)).itertuples() if len(summary) else []):
            values[f"{row.study}/{row.slug}/{row.arch}/{metric.replace('_', '-')}"] = percent(row.value)
    return values


# ---- replicates, convergence and the cross-framework repeat (train cells) ------------------------------------

REPEAT = "repeat"  # cell.settings.role of the other framework's single seed


def replicates(df: pd.DataFrame) -> pd.DataFrame:
    """The rows that count as replicates: every row but a 'repeat' cell's (a repeat checks the frameworks against
    each other on one seed; its accuracy equals the replicate's up to numerical drift, so it is no new draw)."""
    return df[df["role"] != REPEAT] if len(df) and "role" in df else df


def per_seed(df: pd.DataFrame, metric: str, keys=("setup", "config", "dataset", "train_fraction"), phase: str = "final"):
    """A metric per seed, one column per arch, one row per (keys..., seed): what paired differences are taken from.
    Replicate cells of status ok only. Pairs never cross data sets: keys hold the data set, or a key made from it."""
    rows = with_config(replicates(df[(df["status"] == "ok") & (df["metric"] == metric) & (df["phase"] == phase)]))
    if rows.empty:
        return pd.DataFrame()
    rows = rows.assign(dataset=datasets(rows))
    return rows.pivot_table(index=[*keys, "seed"], columns="arch", values="value", aggfunc="first")


def convergence(df: pd.DataFrame) -> pd.DataFrame:
    """One row per ok train cell: study, arch, setup, role, seed, train_fraction, data set, epochs run, converged (1, 0,
    or NaN where the record does not say: it predates the plateau criterion) and at_chance (1, 0 or NaN: ended at
    chance, convbench.run.outcome; such a run is not converged)."""
    columns = ["cell_id", "study", "arch", "setup", "framework", "engine", "role", "seed", "train_fraction", "dataset"]
    df = df if "dataset" in df or not len(df) else df.assign(dataset=None)
    cells = df[(df["task"] == "train") & (df["status"] == "ok")] if len(df) else df
    if cells.empty:
        return pd.DataFrame(columns=[*columns, "epochs", "converged", "at_chance"])
    out = cells.drop_duplicates("cell_id")[columns].set_index("cell_id")
    for metric in ("epochs", "converged", "at_chance"):
        found = cells[cells["metric"] == metric].set_index("cell_id")["value"]
        out[metric] = found.reindex(out.index)
    return out.reset_index()


def converged_pairs(df: pd.DataFrame, keys=("setup", "config", "dataset", "train_fraction")) -> pd.DataFrame:
    """per_seed of 'converged' with a missing record read as converged (records before the criterion): 1/0 per
    (keys..., seed) x arch, for masking paired differences."""
    found = per_seed(df, "converged", keys)
    cells = per_seed(df, "epochs", keys)
    return found.reindex_like(cells).fillna(1.0) if len(cells) else cells


def repeat_check(df: pd.DataFrame) -> pd.DataFrame:
    """Every repeat cell against the replicate of the same study, arch, seed and training fraction in the other
    framework and data set (a scale sweep's scale too): the largest per-epoch difference (absolute, over the epochs
    both ran) in test accuracy and in test loss, the test accuracy's difference at the last epoch both ran (final),
    and the epochs compared."""
    columns = ["study", "arch", "seed", "train_fraction", "dataset", "repeat", "replicate", "epochs", "accuracy", "loss",
               "final"]
    rows = df[df["metric"].isin(["epoch_test_accuracy", "epoch_test_loss"]) & (df["status"] == "ok")] if len(df) \
        and "role" in df else pd.DataFrame()
    if rows.empty or not (rows["role"] == REPEAT).any():
        return pd.DataFrame(columns=columns)
    rows = with_scales(rows.assign(dataset=datasets(rows)))
    keys = ["study", "arch", "seed", "train_fraction", "dataset"]
    out = []
    for key, g in rows.groupby(keys, sort=False):
        repeat, other = g[g["role"] == REPEAT], g[g["role"] != REPEAT]
        for setup, r in repeat.groupby("setup", sort=False):
            o = other[other["framework"] != r["framework"].iloc[0]]
            if o.empty:
                continue
            a = r.pivot_table(index="epoch", columns="metric", values="value")
            b = o[o["setup"] == o["setup"].iloc[0]].pivot_table(index="epoch", columns="metric", values="value")
            diff = (a - b).abs().dropna(how="all")
            last = diff["epoch_test_accuracy"].dropna() if "epoch_test_accuracy" in diff else pd.Series(dtype=float)
            out.append([*key, setup, o["setup"].iloc[0], len(diff),
                        *(diff[m].max() if m in diff else float("nan") for m in ("epoch_test_accuracy",
                                                                                 "epoch_test_loss")),
                        last.iloc[-1] if len(last) else float("nan")])
    return pd.DataFrame(out, columns=columns)

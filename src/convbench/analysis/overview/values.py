"""Numbers and short phrases about the run as a whole, every key under overview/: flags, run/..., env/..., data/...,
train/..., speed/..., import/..., and convergence/..., repeat/..., frameworks/... (runs.py). The sentences around them
live in paper/sections/{introduction,method,threats}.tex."""
from __future__ import annotations

import pandas as pd

from convbench.analysis.formatting import (
    NUMBER_WORDS,
    count_words,
    escape,
    flag,
    framework_name,
    percent,
    setup_label,
    setup_rank,
    tt,
    words,
)
from convbench.analysis.overview import examples, launches, runs
from convbench.analysis.query import full_data
from convbench.analysis.stats import SEVERAL
from convbench.analysis.study import Run
from convbench.run import CHANCE_LEVEL, CHANCE_MARGIN

PREFIX = "overview"  # of every key this study writes


def run_values(df: pd.DataFrame, command: str | None) -> dict[str, str]:
    cells = df.drop_duplicates("cell_id")
    failed = cells[cells["status"] == "failed"]
    studies = [
        f"{tt(study)} ({len(rows)} cells: {', '.join(escape(t) for t in sorted(rows['task'].unique()))})"
        for study, rows in cells.groupby("study", sort=True)]
    setups = [setup_label(*s.split("-", 1)) for s in sorted(set(cells["setup"]), key=setup_rank)]
    return {
        "run/cells": str(len(cells)),
        "run/cells-ok": str(len(cells) - len(failed)),
        "run/cells-failed": str(len(failed)),
        "run/failed-text": f"{len(failed)} failed" if len(failed) else "none failed",
        "overview/failed": flag(len(failed)),
        "run/studies": words(studies),
        "run/setups": words(escape(s) for s in setups),
        "run/devices": device_words(cells),
        "run/command": tt(command) if command else "(not recorded)",
        "run/seeds": count_words(cells["seed"].nunique(), "seed"),
        "run/date": words(sorted({str(d)[:10] for d in cells["started"].dropna()})) or "(not recorded)",
    }


DEVICE_NAMES = {"cpu": "CPU", "cuda": "GPU", "gpu": "GPU"}


def device_words(cells: pd.DataFrame) -> str:
    """The devices per cell, each kind once and without parentheses (the text sets the hardware in its own): 'one
    CPU device', 'one CPU device and, in the scaling study, two'."""
    out = []
    for device, rows in cells.groupby("device", sort=True):
        name = escape(DEVICE_NAMES.get(str(device), str(device)))
        counts = sorted(int(n) for n in rows["devices"].dropna().unique())
        text = count_words(counts[0], f"{name} device")
        for n in counts[1:]:
            studies = sorted(rows.loc[rows["devices"] == n, "study"].unique())
            text += (f" and, in the {words(tt(s) for s in studies)} stud{'ies' if len(studies) > 1 else 'y'}, "
                     f"{NUMBER_WORDS.get(n, str(n))}")
        out.append(text)
    return words(out) or "(not recorded)"


def env_values(env: pd.DataFrame) -> dict[str, str]:
    def distinct(column, rows=env) -> list[str]:
        if column not in rows:
            return []
        return sorted({str(v) for v in rows[column].dropna() if str(v) != ""})

    def one(column, rows=env) -> str:
        return escape("; ".join(distinct(column, rows))) or "(not recorded)"

    def code(column) -> str:  # a name with underscores (x86_64) in typewriter, whose underscore survives extraction
        return tt("; ".join(distinct(column))) if distinct(column) else "(not recorded)"

    values = {"env/cpu-model": one("cpu_model"), "env/cpu-count": one("cpu_count"), "env/python": one("python"),
              "env/numpy": one("numpy"), "env/platform": code("platform"), "env/convbench": one("convbench"),
              "env/device-model": one("device_model")}
    values["env/hardware"] = f"{values['env/cpu-model']} ({values['env/cpu-count']} logical CPUs)"
    models = distinct("device_model")
    if models and models != ["cpu"]:
        values["env/hardware"] += f" with {code('device_model') if '_' in ''.join(models) else one('device_model')}"
    values |= git_values(env)
    versions, threads = [], []
    for framework, rows in (env.groupby("framework", sort=True) if "framework" in env else []):
        packages = [c.removeprefix("versions.") for c in rows.columns if c.startswith("versions.") and distinct(c, rows)]
        parts = []
        for package in packages:
            values[f"env/version/{package}"] = one(f"versions.{package}", rows)
            parts.append(f"{escape(framework_name(package))} {values[f'env/version/{package}']}")
        if parts:
            versions.append(" with ".join(parts))
        if {"threads.intra_op", "threads.inter_op"} <= set(rows.columns) and distinct("threads.intra_op", rows):
            values[f"env/threads/{framework}"] = threads_text(rows, distinct)
            threads.append(f"{escape(framework_name(framework))} {values[f'env/threads/{framework}']}")
    values["env/versions"] = words(versions) if versions else "(not recorded)"
    values["env/threads"] = "; ".join(threads) or "(not recorded)"
    return values


THREAD_GROUPS = {"speed": "timed", "layers": "timed", "train": "training", "scaling": "on several devices"}


def threads_text(rows: pd.DataFrame, distinct) -> str:
    """Intra-op/inter-op threads per kind of cell, as its records say: '2/1 timed, 1/1 training, 2/1 or 2 on several
    devices' (a cell's task is the end of its id)."""
    ids = rows["cell_id"] if "cell_id" in rows else pd.Series("", index=rows.index)
    task = ids.astype(str).str.rsplit("_", n=1).str[-1].map(THREAD_GROUPS).fillna("other")
    parts = []
    for group in dict.fromkeys(THREAD_GROUPS.values()) | {"other": None}:
        mine = rows[task == group]
        if len(mine) and distinct("threads.intra_op", mine):
            both = [" or ".join(distinct(c, mine)) or "?" for c in ("threads.intra_op", "threads.inter_op")]
            both = [f"({x})" if " or " in x else x for x in both]  # '2/(1 or 2)', not '2/1 or 2'
            parts.append("/".join(both) + (f" {group}" * (group != "other")))
    return ", ".join(parts)


def git_values(env: pd.DataFrame) -> dict[str, str]:
    """The commit(s) the cells ran at, with how many cells each where there are several (env/git-commit for the title,
    env/git-commits for the text), and how many cells ran from a working tree with uncommitted changes."""
    cells = env.drop_duplicates("cell_id") if "cell_id" in env else env
    commits = cells["git_commit"].dropna().astype(str).str[:12].value_counts() if "git_commit" in cells else []
    if not len(commits):
        values = {"env/git-commit": "(not recorded)", "env/git-commits": "a commit not recorded"}
    elif len(commits) == 1:
        values = {"env/git-commit": escape(commits.index[0]), "env/git-commits": f"commit {escape(commits.index[0])}"}
    else:
        values = {"env/git-commit": f"{escape(commits.index[0])} ({commits.iloc[0]} of {commits.sum()} cells; "
                                    f"{count_words(len(commits), 'commit')} in all)",
                  "env/git-commits": f"{count_words(len(commits), 'commit')}: " +
                                     words(f"{escape(c)} ({count_words(n, 'cell')})" for c, n in commits.items())}
    dirty = cells["git_dirty"].dropna().map(lambda v: str(v).lower() == "true") if "git_dirty" in cells else []
    values["env/git-state"] = ("(not recorded)" if not len(dirty) else "clean" if not dirty.any() else
                               "with uncommitted changes" if dirty.all() else
                               f"with uncommitted changes in {dirty.sum()} of {len(dirty)} cells")
    values["env/mixed"] = flag(len(commits) > 1 or (len(dirty) and dirty.any()))  # the threats section says so
    values["env/commit-count"] = count_words(len(commits), "commit")
    return values


def criterion_values(rows: pd.DataFrame) -> dict[str, str]:
    """The plateau criterion the train cells stopped by (train/criterion 0 where what it watched or the improvement
    that counts differ, or the records do not say): what it watched, the improvement that counts, and over how many
    epochs, no sooner than and at most, each as every study set it (runs.per_study: studies have caps of their own,
    and a fraction f of a training split has 1/f times its study's cap)."""
    watched = full_data(rows)
    settings = watched.groupby("metric")["value"].agg(["min", "max"]) if len(watched) else pd.DataFrame()
    shared = settings.loc[settings.index.intersection(["criterion_accuracy", "criterion_min_delta"])]
    same = "criterion_accuracy" in settings.index and (shared["min"] == shared["max"]).all()
    chance = {"train/chance-margin": f"{100 * CHANCE_MARGIN:g}", "train/chance-level": f"{CHANCE_LEVEL:g}"}
    if not same:
        return {"train/criterion": "0"} | chance
    value = settings["min"]
    accuracy = value["criterion_accuracy"] == 1
    delta = value.get("criterion_min_delta", 0.0)
    values = {**chance, "train/criterion": "1", "train/monitor": "train accuracy" if accuracy else "train loss",
              "train/min-delta": f"{percent(delta)} points" if accuracy else f"{delta:g}"}
    for key in ("patience", "min_epochs", "max_epochs"):
        values[f"train/{key.replace('_', '-')}"] = runs.per_study(rows, f"criterion_{key}")
    return values


def data_sets(trained: pd.DataFrame) -> str:
    """Each data set once, with what differs between the runs on it: 'planted (4000 training and 1000 test images at
    scales 5, 9 and 13, each image drawing its own, in activation and kernel; 4000 training and 1000 test images at
    scales 7, 11 and 15, one per run, in tracking)'."""
    out = []
    for dataset, rows in trained.groupby("dataset", sort=True):
        rows = rows.assign(graded=rows["planted_scales"].fillna("").astype(str).str.contains(" ")
                           if "planted_scales" in rows else False)
        groups = list(rows.groupby(["train_size", "test_size", "graded"], sort=True))
        variants = []
        for (train, test, graded), v in groups:
            column = "planted_scales" if graded else "planted_scale"
            scales = sorted({float(s) for x in v[column].dropna() for s in str(x).split()}) if column in v else []
            how = ", each image drawing its own" if graded else ", one per run" if len(scales) > 1 else ""
            at = (f" at scale{'s' if len(scales) > 1 else ''} {words(f'{s:.0f}' for s in scales)}{how}"
                  if scales else "")
            studies = f", in {words(tt(s) for s in sorted(v['study'].unique()))}" if len(groups) > 1 else ""
            variants.append(f"{train:.0f} training and {test:.0f} test images{at}{studies}")
        out.append(f"{tt(dataset)} ({'; '.join(variants)})" if variants else tt(dataset))
    return words(out)


def data_values(df: pd.DataFrame) -> dict[str, str]:
    ok = df[df["status"] == "ok"]
    trained = full_data(ok[ok["metric"] == "test_accuracy"])  # the activation study states its smaller training sets
    values = {"overview/trained": flag(len(trained))}
    if len(trained):
        values["data/sets"] = data_sets(trained)
        values["data/names"] = words(tt(d) for d in sorted(trained["dataset"].dropna().unique())) or "(not recorded)"
        epochs = ok[ok["metric"] == "epochs"]["value"]
        low, high = f"{epochs.min():.0f}", f"{epochs.max():.0f}"
        values["train/epochs"] = low if low == high else f"{low} to {high}"
        values["train/batch-size"] = words(str(b) for b in sorted(trained["batch_size"].unique()))
        values |= criterion_values(ok[ok["phase"] == "criterion"])
    timed = ok[(ok["metric"] == "time") & (ok["task"] == "speed")]
    values["overview/timed"] = flag(len(timed))
    if len(timed):
        values["speed/repeats-min"] = str(int(timed["n"].min()))
        values["speed/repeats-max"] = str(int(timed["n"].max()))
        lo, hi = values["speed/repeats-min"], values["speed/repeats-max"]
        values["speed/repeats"] = lo if lo == hi else f"{lo} to {hi}"
        # a derived phase (a difference of two programs, near zero) has a CV of hundreds of percent: timed ones only
        direct = timed[(timed["phase_method"] != "derived") | (timed["phase"] == "step")] \
            if "phase_method" in timed else timed
        values["speed/cv-median"] = percent(direct["cv"].median())
        values["speed/cv-max"] = percent(direct["cv"].max())
        values["speed/batch-size"] = words(str(b) for b in sorted(timed["batch_size"].unique()))
        values["speed/image-size"] = words(f"{s:.0f}" for s in sorted(timed["image_size"].dropna().unique()))
    imports = ok[ok["metric"] == "import_time"].groupby("framework")["value"].median()
    for framework, seconds in imports.items():
        values[f"import/{framework}-s"] = f"{seconds:.1f}"
    values["overview/imports"] = flag(len(imports))
    if len(imports):
        values["import/times"] = words(f"{seconds:.1f}\\,s for {escape(framework_name(f))}"
                                       for f, seconds in imports.items())
    return values


def margin_values(margins) -> dict[str, str]:
    """The practical margins every verdict is decided against, as the method section states them."""
    return {"margin/time": f"{100 * margins.time:g}", "margin/time-ratio": f"{margins.ratio:g}",
            "margin/time-inverse": f"{1 / margins.ratio:.4f}", "margin/accuracy": f"{100 * margins.accuracy:g}",
            "margin/several": f"{SEVERAL:g}"}


def values(run: Run) -> dict[str, str]:
    """Every run-wide value under overview/ (overview/run/..., overview/env/..., overview/speed/...)."""
    found = {**run_values(run.tidy, run.command), **env_values(run.environment), **data_values(run.tidy),
             **launches.values(run.tidy), **margin_values(run.margins), **examples.values(run), **runs.values(run)}
    return {k if k.startswith(f"{PREFIX}/") else f"{PREFIX}/{k}": v for k, v in found.items()}

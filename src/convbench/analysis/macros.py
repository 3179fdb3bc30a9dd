"""Every number the paper quotes, as \\cbset{key}{value} lines, and sentences whose direction words come from the data.

Keys: run/..., env/..., data/..., speed/..., and per study
  <study>/<setup>/<arch>/<phase>-ms                      median time of a phase, ms (and <phase>-iqr-ms)
  <study>/<setup>/<arch>/test-accuracy                   final accuracy in percent (train-accuracy, gap in points)
  <study>/<setup>/<a>-over-<b>/<phase>-ratio             time of a over time of b (-lo / -hi: quartile-based range)
  <study>/<setup>/<a>-vs-<b>/test-accuracy-diff          a minus b, points (gap-diff likewise)
  <study>/<setup>/<a>-vs-<b>/sentence, <study>/sentence  the comparisons in words
  frameworks/<s1>-over-<s2>/<phase>-ratio, frameworks/sentence   (the sentence compares eager setups only)
<setup> is framework-engine (e.g. torch-eager), with the config (device, count, parallelism, batch)
appended only where a study's task ran in more than one config. Pairs are found from the data: a single
k x k convolution against a stack of smaller ones with the same receptive field, and an arch with maxout
pieces against the arch with the same convolutions and pieces 1.

The engines study's keys come from its modules: engines/... (scope, methods, derived phases, consistency, compile
time, failures, the estimated backward split, the roofline) from engines.py, engines/claim/... from claim.py and
layerwise/... from layers.py. The activation study compares its variants with intervals over seeds and training
fractions in activation.py (activation/...; its pairs are not among the pairs above). Accuracy keys here are medians
at each study's largest training fraction.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from convbench.analysis import activation, claim, engines, layers
from convbench.analysis.tables import decimals, escape, ms, ratio, tt, words
from convbench.analysis.tidy import LAYER_TASK, framework_name, full_data, setup_label, setup_rank, summarise

NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
TIME_PHASES = ["forward", "backward", "optimizer", "total", "step"]
PHASE_WORDS = {"forward": "forward pass", "backward": "backward pass", "optimizer": "optimizer update",
               "total": "sum of the phases", "step": "whole training step"}


def points(fraction: float) -> str:
    return f"{100 * fraction:.1f}"


def slugs(summary: pd.DataFrame) -> pd.Series:
    """The <setup> part of a key for each row of a summary."""
    many = summary.groupby(["study", "task"])["config"].transform("nunique") > 1
    return summary["setup"].where(~many, summary["setup"] + "-" + summary["config"])


def in_words(row) -> str:
    config = f" ({escape(row['config'])})" if row["slug"] != row["setup"] else ""
    return f"In {escape(setup_label(row['framework'], row['engine']))}{config}"


def convolutions(row) -> str:
    k, depth = int(row["kernel"]), int(row["depth"])
    conv = f"{k}$\\times${k}"
    count = NUMBER_WORDS.get(depth, str(depth))
    return f"one {conv} convolution per block" if depth == 1 else f"{count} stacked {conv} convolutions"


def pairs(df: pd.DataFrame) -> list[tuple[str, str, str, str]]:
    """(study, a, b, kind) comparisons the data supports; kind is 'stack' or 'activation'. The activation study
    compares its variants with intervals over seeds in activation.py."""
    archs = df[(df["status"] == "ok") & (df["task"] != LAYER_TASK) & (df["study"] != activation.STUDY)]
    archs = archs.drop_duplicates(["study", "arch"])
    found = []
    for study, group in archs.groupby("study", sort=True):
        rows = group.sort_values(["receptive_field", "depth", "pieces", "width", "arch"]).to_dict("records")
        for a in rows:
            for b in rows:
                same_act = (a["activation"], a["pieces"]) == (b["activation"], b["pieces"])
                if a["depth"] == 1 and b["depth"] > 1 and a["receptive_field"] == b["receptive_field"] and same_act:
                    found.append((study, a["arch"], b["arch"], "stack"))
                if a["pieces"] > 1 and b["pieces"] == 1 and (a["kernel"], a["depth"]) == (b["kernel"], b["depth"]):
                    found.append((study, a["arch"], b["arch"], "activation"))
    return found


def time_ratio(a, b) -> tuple[float, float, float]:
    """a/b and a range from the quartiles (median -/+ IQR/2) of both."""
    r = a["value"] / b["value"]
    ia, ib = (0.0 if pd.isna(x) else x / 2 for x in (a["iqr"], b["iqr"]))
    lo = (a["value"] - ia) / (b["value"] + ib)
    hi = (a["value"] + ia) / (b["value"] - ib) if b["value"] > ib else float("inf")
    return r, lo, hi


def speed_words(r: float, lo: float, hi: float) -> str:
    if lo <= 1 <= hi:
        return "about as fast as"
    return "slower than" if r > 1 else "faster than"


def compare(word_if_more: str, word_if_less: str, a: str, b: str, same: str) -> str:
    """Direction word from two numbers as printed, so that the word never contradicts the digits."""
    return same if float(a) == float(b) else (word_if_more if float(a) > float(b) else word_if_less)


def run_values(df: pd.DataFrame, command: str | None) -> dict[str, str]:
    cells = df.drop_duplicates("cell_id")
    failed = cells[cells["status"] == "failed"]
    studies = [
        f"{tt(study)} ({len(rows)} cells: {', '.join(escape(t) for t in sorted(rows['task'].unique()))})"
        for study, rows in cells.groupby("study", sort=True)]
    setups = [setup_label(*s.split("-", 1)) for s in sorted(set(cells["setup"]), key=setup_rank)]
    devices = sorted({f"{n} {d} device{'s' if n != 1 else ''}" for d, n in zip(cells["device"], cells["devices"])})
    return {
        "run/cells": str(len(cells)),
        "run/cells-ok": str(len(cells) - len(failed)),
        "run/cells-failed": str(len(failed)),
        "run/studies": words(studies),
        "run/setups": words(escape(s) for s in setups),
        "run/devices": words(escape(d) for d in devices),
        "run/scope": (f"This run holds {len(cells)} cells ({len(failed)} failed) of the studies {words(studies)}, "
                      f"in {words(escape(s) for s in setups)}, on {words(escape(d) for d in devices)}."),
        "run/command": tt(command) if command else "(not recorded)",
        "run/seeds": str(cells["seed"].nunique()),
        "run/date": words(sorted({str(d)[:10] for d in cells["started"].dropna()})) or "(not recorded)",
    }


def env_values(env: pd.DataFrame) -> dict[str, str]:
    def distinct(column, rows=env) -> list[str]:
        if column not in rows:
            return []
        return sorted({str(v) for v in rows[column].dropna() if str(v) != ""})

    def one(column, rows=env) -> str:
        return escape("; ".join(distinct(column, rows))) or "(not recorded)"

    values = {"env/cpu-model": one("cpu_model"), "env/cpu-count": one("cpu_count"), "env/python": one("python"),
              "env/numpy": one("numpy"), "env/platform": one("platform"), "env/convbench": one("convbench"),
              "env/device-model": one("device_model")}
    values["env/hardware"] = f"{values['env/cpu-model']} ({values['env/cpu-count']} logical CPUs)"
    if distinct("device_model") and distinct("device_model") != ["cpu"]:
        values["env/hardware"] += f" with {values['env/device-model']}"
    commits = distinct("git_commit")
    values["env/git-commit"] = escape("; ".join(c[:12] for c in commits)) or "(not recorded)"
    dirty = {str(v).lower() for v in env.get("git_dirty", pd.Series(dtype=object)).dropna()}
    values["env/git-state"] = ("with uncommitted changes" if "true" in dirty else "clean") if dirty else "(not recorded)"
    versions, threads = [], []
    for framework, rows in (env.groupby("framework", sort=True) if "framework" in env else []):
        packages = [c.removeprefix("versions.") for c in rows.columns if c.startswith("versions.") and distinct(c, rows)]
        parts = []
        for package in packages:
            values[f"env/version/{package}"] = one(f"versions.{package}", rows)
            parts.append(f"{escape(framework_name(package))} {values[f'env/version/{package}']}")
        if parts:
            versions.append(" with ".join(parts))
        counts = [f"{c.removeprefix('threads.').replace('_', '-')} {one(c, rows)}" for c in rows.columns
                  if c.startswith("threads.") and distinct(c, rows)]
        if counts:
            values[f"env/threads/{framework}"] = ", ".join(counts)
            threads.append(f"{escape(framework_name(framework))}: {', '.join(counts)}")
    values["env/versions"] = words(versions) if versions else "(not recorded)"
    values["env/threads"] = "; ".join(threads) or "(not recorded)"
    return values


def data_values(df: pd.DataFrame) -> dict[str, str]:
    values = {}
    ok = df[df["status"] == "ok"]
    trained = full_data(ok[ok["metric"] == "test_accuracy"])  # activation.py states its smaller training sets
    if trained.empty:
        values["data/sentence"] = "This run trained no network."
    else:
        sets = trained.drop_duplicates(["dataset", "train_size", "test_size"])
        data = words(f"{tt(r.dataset)} ({r.train_size:.0f} training and {r.test_size:.0f} test images)"
                     if pd.notna(r.train_size) else tt(r.dataset) for r in sets.itertuples())
        epochs = ok[ok["metric"] == "epochs"]["value"]
        values["train/epochs"] = words(f"{e:.0f}" for e in sorted(epochs.unique()))
        values["train/batch-size"] = words(str(b) for b in sorted(trained["batch_size"].unique()))
        values["data/sentence"] = (f"Networks were trained for {values['train/epochs']} epochs with batches of "
                                   f"{values['train/batch-size']} on {data}.")
    timed = ok[(ok["metric"] == "time") & (ok["task"] == "speed")]
    if timed.empty:
        values["speed/sentence"] = "This run timed no training step."
    else:
        values["speed/repeats-min"] = str(int(timed["n"].min()))
        values["speed/repeats-max"] = str(int(timed["n"].max()))
        values["speed/cv-median"] = points(timed["cv"].median())
        values["speed/cv-max"] = points(timed["cv"].max())
        values["speed/batch-size"] = words(str(b) for b in sorted(timed["batch_size"].unique()))
        values["speed/image-size"] = words(f"{s:.0f}" for s in sorted(timed["image_size"].dropna().unique()))
        lo, hi = values["speed/repeats-min"], values["speed/repeats-max"]
        repeats = lo if lo == hi else f"{lo} to {hi}"
        values["speed/sentence"] = (
            f"Each timed cell repeated the step {repeats} times "
            f"on batches of {values['speed/batch-size']} synthetic images of "
            f"{values['speed/image-size']}$\\times${values['speed/image-size']} pixels. The coefficient of variation "
            f"of a phase's repeats had a median of {values['speed/cv-median']}\\,\\% and a maximum of "
            f"{values['speed/cv-max']}\\,\\%.")
    imports = ok[ok["metric"] == "import_time"].groupby("framework")["value"].median()
    for framework, seconds in imports.items():
        values[f"import/{framework}-s"] = f"{seconds:.1f}"
    if len(imports):
        values["import/sentence"] = "Importing the framework took " + words(
            f"{seconds:.1f}\\,s for {escape(framework_name(f))}" for f, seconds in imports.items()) + "."
    else:
        values["import/sentence"] = "No import time was recorded."
    return values


def cell_values(times: pd.DataFrame, accuracy: dict[str, pd.DataFrame]) -> dict[str, str]:
    values = {}
    for row in times.itertuples():
        base = f"{row.study}/{row.slug}/{row.arch}/{row.phase}"
        values[f"{base}-ms"] = ms(row.value)
        if pd.notna(row.iqr):
            values[f"{base}-iqr-ms"] = f"{row.iqr * 1e3:.{decimals(row.value * 1e3)}f}"  # the median's precision
    for metric, summary in accuracy.items():
        for row in summary.itertuples():
            values[f"{row.study}/{row.slug}/{row.arch}/{metric.replace('_', '-')}"] = points(row.value)
    return values


def pick(summary: pd.DataFrame, study: str, slug: str, arch: str, phase: str):
    hit = summary[(summary["study"] == study) & (summary["slug"] == slug) & (summary["arch"] == arch)
                  & (summary["phase"] == phase)] if len(summary) else summary
    return hit.iloc[0] if len(hit) else None


def pair_values(df: pd.DataFrame, times: pd.DataFrame, accuracy: dict[str, pd.DataFrame]) -> dict[str, str]:
    values, study_sentences = {}, {}
    test, gap = accuracy["test_accuracy"], accuracy["gap"]
    both = pd.concat([times, test])
    for study, a, b, kind in pairs(df):
        for slug, rows in both[both["study"] == study].groupby("slug", sort=True):
            if not {a, b} <= set(rows["arch"]):
                continue
            key, ra, rb = f"{study}/{slug}", rows[rows["arch"] == a].iloc[0], rows[rows["arch"] == b].iloc[0]
            if kind == "stack":
                subject, obj = f"{convolutions(ra)} ({tt(a)})", f"{convolutions(rb)} ({tt(b)})"
            else:
                subject, obj = f"{tt(a)} (maxout, {int(ra['pieces'])} pieces)", tt(b)
            clauses = []
            for phase in TIME_PHASES:
                ta, tb = pick(times, study, slug, a, phase), pick(times, study, slug, b, phase)
                if ta is None or tb is None:
                    continue
                r, lo, hi = time_ratio(ta, tb)
                for suffix, x in [("", r), ("-lo", lo), ("-hi", hi)]:
                    values[f"{key}/{a}-over-{b}/{phase}-ratio{suffix}"] = ratio(x)
                if phase == "backward" or (phase == "step" and not clauses):
                    clauses.append(f"{subject} was {speed_words(r, lo, hi)} {obj} in the {PHASE_WORDS[phase]}: it took "
                                   f"{ratio(r)}$\\times$ as long (quartile-based range {ratio(lo)}--{ratio(hi)}$\\times$)")
            if pd.notna(ra["params"]) and pd.notna(rb["params"]):
                values[f"{key}/{a}-over-{b}/params-ratio"] = ratio(ra["params"] / rb["params"])
                if clauses:
                    clauses[-1] += f", with {ratio(ra['params'] / rb['params'])}$\\times$ the parameters"
            acc_a, acc_b = pick(test, study, slug, a, "final"), pick(test, study, slug, b, "final")
            if acc_a is not None and acc_b is not None:
                x, y = points(acc_a["value"]), points(acc_b["value"])
                values[f"{key}/{a}-vs-{b}/test-accuracy-diff"] = points(acc_a["value"] - acc_b["value"])
                word = compare("higher test accuracy than", "lower test accuracy than", x, y, "the same test accuracy as")
                clause = f"{'it' if clauses else tt(a)} reached {word} {tt(b)} ({x}\\,\\% vs {y}\\,\\%)"
                gap_a, gap_b = pick(gap, study, slug, a, "final"), pick(gap, study, slug, b, "final")
                if gap_a is not None and gap_b is not None:
                    gx, gy = points(gap_a["value"]), points(gap_b["value"])
                    values[f"{key}/{a}-vs-{b}/gap-diff"] = points(gap_a["value"] - gap_b["value"])
                    clause += (f", with {compare('a larger', 'a smaller', gx, gy, 'the same')} train/test gap ({gx} vs {gy} "
                               f"points{compare(': it overfit more', ': it overfit less', gx, gy, '')})")
                clauses.append(clause)
            if clauses:
                sentence = f"{in_words(ra)}, " + "; ".join(clauses) + "."
                values[f"{key}/{a}-vs-{b}/sentence"] = sentence
                study_sentences.setdefault(study, []).append(sentence)
    for study in sorted(df[(df["task"] != LAYER_TASK) & (df["study"] != activation.STUDY)]["study"].unique()):
        found = study_sentences.get(study, [])
        none = f"The {tt(study)} study has no pair of architectures with results in this run to compare."
        values[f"{study}/sentence"] = " ".join(found) or none
        values[f"{study}/findings"] = ("\\begin{itemize}\n" + "".join(f"\\item {x}\n" for x in found) + "\\end{itemize}"
                                       if found else none)
    return values


def framework_values(times: pd.DataFrame) -> dict[str, str]:
    """Each setup against each other one: median over the architectures both timed of the per-arch ratio.

    The sentence compares eager setups only; the engines study (left out here) compares every engine, with intervals.
    """
    values, sentences = {}, []
    times = times[(times["task"] == "speed") & (times["study"] != engines.STUDY)] if len(times) else times
    setups = sorted(times["setup"].unique()) if len(times) else []
    for phase in ["backward", "step"]:
        rows = times[times["phase"] == phase]
        wide = rows.pivot_table(index=["study", "arch", "config"], columns="setup", values="value", aggfunc="median")
        for i, s1 in enumerate(setups):
            for s2 in setups[i + 1:]:
                if s1 not in wide or s2 not in wide:
                    continue
                ratios = (wide[s1] / wide[s2]).dropna()
                if ratios.empty:
                    continue
                values[f"frameworks/{s1}-over-{s2}/{phase}-ratio"] = ratio(ratios.median())
                values[f"frameworks/{s1}-over-{s2}/{phase}-ratio-min"] = ratio(ratios.min())
                values[f"frameworks/{s1}-over-{s2}/{phase}-ratio-max"] = ratio(ratios.max())
                if not (s1.endswith("-eager") and s2.endswith("-eager")):
                    continue
                slow, fast, r = (s1, s2, ratios) if ratios.median() >= 1 else (s2, s1, 1 / ratios)
                name = {s: escape(setup_label(*times[times["setup"] == s].iloc[0][["framework", "engine"]])) for s in (s1, s2)}
                what = "backward pass" if phase == "backward" else "whole training step"
                sentences.append(
                    f"{name[slow]}'s {what} took {ratio(r.median())}$\\times$ as long as {name[fast]}'s "
                    f"(median over {len(r)} architectures; range {ratio(r.min())}--{ratio(r.max())}$\\times$)")
    values["frameworks/sentence"] = ("; ".join(sentences) + ".") if sentences else (
        "Only one framework was timed in eager mode in this run, so there is no cross-framework comparison here.")
    return values


def macros(df: pd.DataFrame, env: pd.DataFrame, command: str | None = None,
           samples: pd.DataFrame | None = None) -> dict[str, str]:
    """samples: the raw timing samples (tidy.samples), which the engines study's bootstrap intervals resample."""
    samples = pd.DataFrame(columns=["cell_id", "phase", "repeat", "value"]) if samples is None else samples
    times = summarise(df, "time")
    times = times.assign(slug=slugs(times)) if len(times) else times.assign(slug=[])
    accuracy = {}
    for metric in ["test_accuracy", "train_accuracy", "gap"]:
        summary = summarise(full_data(df), metric)
        accuracy[metric] = summary.assign(slug=slugs(summary)) if len(summary) else summary.assign(slug=[])
    return {**run_values(df, command), **env_values(env), **data_values(df), **cell_values(times, accuracy),
            **pair_values(df, times, accuracy), **framework_values(times), **engines.engine_values(df, samples),
            **layers.layer_values(df), **claim.claim_values(claim.claims(df, samples)),
            **activation.activation_values(df, samples)}


def write_macros(values: dict[str, str], path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["% Generated by convbench.analysis.macros from the run's result records. Do not edit."]
    lines += [rf"\cbset{{{key}}}{{{value}}}" for key, value in sorted(values.items())]
    path.write_text("\n".join(lines) + "\n")
    return path

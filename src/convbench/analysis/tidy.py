"""Result records -> one tidy table: one row per cell x metric x phase.

Times stay in seconds here; tables and text convert them for display.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

REQUIRED = ("schema_version", "cell_id", "cell", "status")
CELL_REQUIRED = ("study", "task", "framework", "engine", "device", "devices", "batch_size", "seed", "arch")
STATUSES = ("ok", "failed")

# Display names only; any framework not listed shows under its own name.
FRAMEWORK_NAMES = {"torch": "PyTorch", "tensorflow": "TensorFlow", "keras": "Keras", "jax": "JAX"}


class RecordError(ValueError):
    """A result record is unreadable or incomplete; the message names the file."""


def record_paths(source) -> list[Path]:
    """A directory (searched recursively for *.json), a file, or an iterable of directories and files."""
    sources = [source] if isinstance(source, (str, Path)) else source
    paths = []
    for item in map(Path, sources):
        paths += sorted(item.rglob("*.json")) if item.is_dir() else [item]
    return paths


def load_records(source) -> list[dict]:
    paths = record_paths(source)
    if not paths:
        raise RecordError(f"{source}: no result records (*.json) found")
    records, seen = [], {}
    for path in paths:
        try:
            record = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RecordError(f"{path}: not a readable JSON record: {e}") from e
        problem = missing(record)
        if problem:
            raise RecordError(f"{path}: invalid result record: {problem}")
        if record["cell_id"] in seen:
            raise RecordError(f"{path}: cell_id {record['cell_id']!r} already read from {seen[record['cell_id']]}")
        seen[record["cell_id"]] = path
        records.append(record)
    return records


def missing(record) -> str | None:
    """What a record lacks, or None when it has what the analysis reads."""
    if not isinstance(record, dict):
        return "top level is not an object"
    absent = [k for k in REQUIRED if k not in record]
    if absent:
        return f"missing key(s) {absent}"
    if not isinstance(record["cell"], dict):
        return "'cell' is not an object"
    absent = [k for k in CELL_REQUIRED if k not in record["cell"]]
    if absent:
        return f"missing cell key(s) {absent}"
    arch = record["cell"]["arch"]
    if not isinstance(arch, dict) or "name" not in arch or not arch.get("blocks"):
        return "cell.arch needs a name and at least one block"
    if record["status"] not in STATUSES:
        return f"status {record['status']!r} is not one of {STATUSES}"
    if record["status"] == "ok":
        if "timings" not in record and "training" not in record:
            return "an ok record needs 'timings' or 'training'"
        if "training" in record and not record["training"].get("epochs"):
            return "'training' has no epochs"
        if "timings" in record and "phases" not in record["timings"]:
            return "'timings' has no phases"
    return None


def describe(arch: dict) -> str:
    """Short text for an architecture, e.g. '2x 3x3/32 relu, 3x3/64 relu'."""
    parts = []
    for b in arch["blocks"]:
        act = b.get("activation", "relu")
        if b.get("pieces", 1) > 1:
            act = f"{act}{b['pieces']}"
        stack = f"{b['depth']}x " if b.get("depth", 1) > 1 else ""
        parts.append(f"{stack}{b['kernel']}x{b['kernel']}/{b['width']} {act}")
    return ", ".join(parts)


def last_line(text) -> str | None:
    lines = [line.strip() for line in str(text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else None


def framework_name(framework: str) -> str:
    return FRAMEWORK_NAMES.get(framework, framework)


def setup_label(framework: str, engine: str) -> str:
    return f"{framework_name(framework)} {engine}"


def setup_labels(summary: pd.DataFrame) -> pd.Series:
    """'PyTorch eager' per row, plus the config (device, batch) where the rows hold more than one."""
    label = pd.Series([setup_label(f, e) for f, e in zip(summary["framework"], summary["engine"])], index=summary.index)
    return label + " " + summary["config"] if summary["config"].nunique() > 1 else label


def cell_columns(record: dict) -> dict:
    cell, counts = record["cell"], record.get("counts") or {}
    arch, first = cell["arch"], cell["arch"]["blocks"][0]
    kernel, depth = first.get("kernel"), first.get("depth", 1)
    dataset = (record.get("training") or {}).get("dataset") or {}
    return {
        "cell_id": record["cell_id"],
        "study": cell["study"],
        "task": cell["task"],
        "framework": cell["framework"],
        "engine": cell["engine"],
        "setup": f"{cell['framework']}-{cell['engine']}",
        "device": cell["device"],
        "devices": cell["devices"],
        "parallelism": cell.get("parallelism", "none"),
        "arch": arch["name"],
        "description": describe(arch),
        "kernel": kernel,
        "depth": depth,
        "receptive_field": depth * (kernel - 1) + 1 if kernel else None,
        "activation": first.get("activation", "relu"),
        "pieces": first.get("pieces", 1),
        "width": first.get("width"),
        "in_channels": arch.get("in_channels"),
        "params": counts.get("params"),
        "flops": counts.get("flops_forward"),
        "batch_size": cell["batch_size"],
        "image_size": cell.get("image_size"),
        "seed": cell["seed"],
        "dataset": dataset.get("name"),
        "train_size": dataset.get("train_size"),
        "test_size": dataset.get("test_size"),
        "started": record.get("started"),
        "status": record["status"],
        "error": last_line(record.get("error")) if record["status"] == "failed" else None,
    }


def measurement_rows(record: dict) -> list[dict]:
    """(metric, phase, value, iqr, cv, n) of an ok record."""
    rows = []

    def add(metric, phase, value, iqr=None, cv=None, n=None):
        rows.append({"metric": metric, "phase": phase, "value": value, "iqr": iqr, "cv": cv, "n": n})

    def add_summary(phase, s):
        add("time", phase, s["median"], s.get("iqr"), s.get("cv"), s.get("n"))

    timings = record.get("timings")
    if timings:
        for phase, summary in timings["phases"].items():
            add_summary(phase, summary)
        if timings.get("step"):
            add_summary("step", timings["step"])
        if timings.get("first_step") is not None:
            add("first_step", "step", timings["first_step"])
    training = record.get("training")
    if training:
        epochs = training["epochs"]
        final = epochs[-1]
        for metric in ("train_accuracy", "test_accuracy", "train_loss", "test_loss"):
            if final.get(metric) is not None:
                add(metric, "final", final[metric])
        if final.get("train_accuracy") is not None and final.get("test_accuracy") is not None:
            add("gap", "final", final["train_accuracy"] - final["test_accuracy"])
        seconds = pd.Series([e.get("seconds") for e in epochs], dtype=float).dropna()
        if len(seconds):
            q1, q3 = seconds.quantile([0.25, 0.75])
            add("epoch_time", "epoch", seconds.median(), q3 - q1, seconds.std(ddof=0) / seconds.mean(), len(seconds))
        add("epochs", "final", final.get("epoch", len(epochs)))
    import_s = (record.get("process") or {}).get("import_s")
    if import_s is not None:
        add("import_time", "process", import_s)
    if record.get("wall_s") is not None:
        add("wall_time", "cell", record["wall_s"])
    return rows


def tidy(records: list[dict]) -> pd.DataFrame:
    rows = []
    for record in records:
        cell = cell_columns(record)
        if record["status"] == "failed":
            rows.append({**cell, "metric": None, "phase": None, "value": None, "iqr": None, "cv": None, "n": None})
        else:
            rows.extend({**cell, **m} for m in measurement_rows(record))
    return pd.DataFrame(rows)


def environment(records: list[dict]) -> pd.DataFrame:
    """One row per record: its framework and its flattened environment (versions.torch, threads.intra_op, ...)."""
    cells = pd.DataFrame([{"cell_id": r["cell_id"], "framework": r["cell"]["framework"],
                           "engine": r["cell"]["engine"], "status": r["status"], "started": r.get("started")}
                          for r in records])
    env = pd.json_normalize([r.get("environment") or {} for r in records])
    return pd.concat([cells, env], axis=1)


# A "setup" is what runs the cell (framework + engine); a "config" is where and how big (devices, batch).
SUMMARY_KEYS = ["study", "task", "setup", "framework", "engine", "config", "arch"]
ARCH_ORDER = ["receptive_field", "depth", "pieces", "width", "arch"]


def with_config(df: pd.DataFrame) -> pd.DataFrame:
    config = df["device"].astype(str) + df["devices"].astype(str) + "-" + df["parallelism"].astype(str) + "-b" + df["batch_size"].astype(str)
    return df.assign(config=config)


def summarise(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Median over the cells (seeds) of each study x setup x config x arch x phase, for one metric.

    iqr is the median of the cells' own IQRs (repeat-to-repeat spread), seeds the number of seeds.
    """
    rows = with_config(df[(df["status"] == "ok") & (df["metric"] == metric)])
    if rows.empty:
        return rows.assign(seeds=[])
    first = {c: (c, "first") for c in ["description", "kernel", "depth", "receptive_field", "activation", "pieces",
                                       "width", "params", "flops", "in_channels", "image_size", "dataset",
                                       "train_size", "test_size"]}
    out = (rows.groupby(SUMMARY_KEYS + ["phase"], sort=False, dropna=False)
           .agg(value=("value", "median"), iqr=("iqr", "median"), n=("n", "sum"), seeds=("seed", "nunique"), **first)
           .reset_index())
    return out.sort_values(["study", *ARCH_ORDER, "setup", "config"], kind="stable").reset_index(drop=True)

"""Result records -> one tidy table: one row per cell x metric x phase.

Times stay in seconds here; tables and text convert them for display. Besides the measured times a speed cell
gets its roofline metrics (achieved FLOP/s against the ceilings measured in its own process), and samples()
keeps every raw timing sample in a long table of its own.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

REQUIRED = ("schema_version", "cell_id", "cell", "status")
CELL_REQUIRED = ("study", "task", "framework", "engine", "device", "devices", "batch_size", "seed", "arch")
STATUSES = ("ok", "failed")

LAYER_TASK = "layers"  # layer-wise cells: one convolution and its activation, timed phase by phase
LEVEL = 0.95  # of every interval over seeds

# Tables list setups in this order: frameworks, then each framework's engines; others follow alphabetically.
FRAMEWORK_ORDER = ["torch", "tensorflow"]
ENGINE_ORDER = ["eager", "torchscript", "compile", "function", "xla"]

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


def setup_rank(setup: str) -> tuple:
    framework, _, engine = setup.partition("-")
    rank = lambda order, x: (order.index(x), "") if x in order else (len(order), x)  # noqa: E731
    return (*rank(FRAMEWORK_ORDER, framework), *rank(ENGINE_ORDER, engine))


def by_setup(column: pd.Series) -> pd.Series:
    """A sort key: the setup column in setup_rank order, other columns as they are."""
    return column.map(setup_rank) if column.name == "setup" else column


def setup_labels(summary: pd.DataFrame) -> pd.Series:
    """'PyTorch eager' per row, plus the config (device, batch) where the rows hold more than one."""
    label = pd.Series([setup_label(f, e) for f, e in zip(summary["framework"], summary["engine"])], index=summary.index)
    return label + " " + summary["config"] if summary["config"].nunique() > 1 else label


def convolutions(arch: dict, image_size) -> str | None:
    """The network's convolutions as 'c<in>-o<filters>-k<kernel>-s<size>' words, the layer cells' naming."""
    if not image_size or arch.get("in_channels") is None:
        return None
    shapes, channels, size = [], arch["in_channels"], int(image_size)
    for block in arch["blocks"]:
        for _ in range(block.get("depth", 1)):
            shapes.append(f"c{channels}-o{block['width']}-k{block['kernel']}-s{size}")
            channels = block["width"] // block.get("pieces", 1)
        size //= block.get("pool", 2)
    return " ".join(shapes)


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
        "maps": ", ".join(str(b["width"] // b.get("pieces", 1)) for b in arch["blocks"]),  # leaving each block
        "in_channels": arch.get("in_channels"),
        "params": counts.get("params"),
        "flops": counts.get("flops_forward"),  # per example; a layer cell's is its convolution's for the whole batch
        "flops_step": counts.get("flops_step"),
        "bytes_step": counts.get("bytes_step"),
        "convs": convolutions(arch, cell.get("image_size")),
        "batch_size": cell["batch_size"],
        "image_size": cell.get("image_size"),
        "seed": cell["seed"],
        "train_fraction": float(cell.get("train_fraction", 1.0)),  # of the training split; speed cells: 1.0
        "phase_method": (record.get("timings") or {}).get("phase_method"),
        "max_iqr_ratio": (cell.get("settings") or {}).get("max_iqr_ratio"),
        "dataset": dataset.get("name"),
        "train_size": dataset.get("train_size"),
        "test_size": dataset.get("test_size"),
        "started": record.get("started"),
        "status": record["status"],
        "error": last_line(record.get("error")) if record["status"] == "failed" else None,
    }


def roofline(flops: float, bytes_moved: float, seconds: float, gemm_flops: float, bandwidth: float) -> dict:
    """Achieved FLOP/s, arithmetic intensity (FLOP/byte), attainable FLOP/s under both ceilings, and the fraction."""
    intensity = flops / bytes_moved
    attainable = min(gemm_flops, bandwidth * intensity)
    achieved = flops / seconds
    return {"achieved_flops": achieved, "arithmetic_intensity": intensity, "attainable_flops": attainable,
            "ceiling_fraction": achieved / attainable}


def measurement_rows(record: dict) -> list[dict]:
    """(metric, phase, value, iqr, cv, n, noisy) of an ok record."""
    rows = []

    def add(metric, phase, value, iqr=None, cv=None, n=None, noisy=None):
        rows.append({"metric": metric, "phase": phase, "value": value, "iqr": iqr, "cv": cv, "n": n, "noisy": noisy})

    def add_summary(metric, phase, s):
        add(metric, phase, s["median"], s.get("iqr"), s.get("cv"), s.get("n"), s.get("noisy"))

    timings, counts = record.get("timings"), record.get("counts") or {}
    ceilings = (record.get("process") or {}).get("ceilings") or {}
    if timings:
        for phase, summary in timings["phases"].items():
            add_summary("time", phase, summary)
        if timings.get("step"):
            add_summary("time", "step", timings["step"])
        if timings.get("first_step") is not None:
            add("first_step", "step", timings["first_step"])
        if (record.get("engine") or {}).get("compile_s") is not None:
            add("compile_time", "step", record["engine"]["compile_s"])
        memory = record.get("memory") or {}  # null where the framework or device cannot measure it
        if memory.get("saved_for_backward_bytes") is not None:
            add("saved_bytes", "backward", memory["saved_for_backward_bytes"])
        if memory.get("peak_bytes") is not None:
            add("peak_bytes", "step", memory["peak_bytes"])
        for metric in ("gemm_flops", "memory_bandwidth"):
            if ceilings.get(metric):  # a ceiling is the best repeat (older records: the median)
                c = ceilings[metric]
                add(metric, "ceiling", c.get("best", c["median"]), c.get("iqr"), c.get("cv"), c.get("n"), c.get("noisy"))
        if record["cell"]["task"] == LAYER_TASK and counts.get("flops_forward"):
            # The forward convolution, and each half of its backward, do the same FLOPs.
            for phase in ("forward", "backward_input", "backward_weight"):
                if timings["phases"].get(phase):
                    add("achieved_flops", phase, counts["flops_forward"] / timings["phases"][phase]["median"])
        step = timings.get("step")
        if step and counts.get("flops_step") and counts.get("bytes_step") and all(
                ceilings.get(m) for m in ("gemm_flops", "memory_bandwidth")):
            gemm, bandwidth = (ceilings[m].get("best", ceilings[m]["median"]) for m in ("gemm_flops", "memory_bandwidth"))
            point = roofline(counts["flops_step"], counts["bytes_step"], step["median"], gemm, bandwidth)
            for metric, value in point.items():
                add(metric, "step", value)
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
            rows.append({**cell, "metric": None, "phase": None, "value": None, "iqr": None, "cv": None, "n": None,
                         "noisy": None})
        else:
            rows.extend({**cell, **m} for m in measurement_rows(record))
    df = pd.DataFrame(rows)
    return df.assign(noisy=df["noisy"].astype("boolean")) if len(df) else df


def samples(records: list[dict]) -> pd.DataFrame:
    """Every raw timing sample: one row per cell x phase x repeat, in seconds (bootstrap intervals resample these)."""
    rows = []
    for record in records:
        timings = record.get("timings") if record["status"] == "ok" else None
        if not timings:
            continue
        summaries = {**timings["phases"], **({"step": timings["step"]} if timings.get("step") else {})}
        for phase, summary in summaries.items():
            rows += [{"cell_id": record["cell_id"], "phase": phase, "repeat": i, "value": v}
                     for i, v in enumerate(summary.get("samples") or [])]
    return pd.DataFrame(rows, columns=["cell_id", "phase", "repeat", "value"])


WARNINGS_SEP = " | "


def environment(records: list[dict]) -> pd.DataFrame:
    """One row per record: its framework, its flattened environment (versions.torch, threads.intra_op, flags.layout,
    ...) and how its engine ran it (engine.optimizer, engine.precision, engine.warnings joined by WARNINGS_SEP)."""
    cells = pd.DataFrame([{"cell_id": r["cell_id"], "framework": r["cell"]["framework"],
                           "engine": r["cell"]["engine"], "status": r["status"], "started": r.get("started")}
                          for r in records])
    env = pd.json_normalize([r.get("environment") or {} for r in records])
    engine = [r.get("engine") or {} for r in records]
    engines = pd.DataFrame({"engine.optimizer": [e.get("optimizer") for e in engine],
                            "engine.precision": [e.get("precision") for e in engine],
                            "engine.warnings": [WARNINGS_SEP.join(e.get("warnings") or []) or None for e in engine]})
    return pd.concat([cells, env, engines], axis=1)


# A "setup" is what runs the cell (framework + engine); a "config" is where and how big (devices, batch).
SUMMARY_KEYS = ["study", "task", "setup", "framework", "engine", "config", "arch", "train_fraction"]
ARCH_ORDER = ["receptive_field", "depth", "pieces", "width", "arch"]


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
                                       "width", "maps", "params", "flops", "in_channels", "image_size", "dataset",
                                       "train_size", "test_size", "batch_size", "convs", "flops_step", "bytes_step",
                                       "phase_method", "max_iqr_ratio"]}
    out = (rows.groupby(SUMMARY_KEYS + ["phase"], sort=False, dropna=False)
           .agg(value=("value", "median"), iqr=("iqr", "median"), n=("n", "sum"), seeds=("seed", "nunique"),
                noisy=("noisy", "max"), **first)
           .reset_index())
    out = out.sort_values(["study", *ARCH_ORDER, "setup", "config", "train_fraction"], kind="stable", key=by_setup)
    return out.reset_index(drop=True)


def full_data(df: pd.DataFrame) -> pd.DataFrame:
    """The rows at the largest training fraction of their study and task (the whole training split, unless a study
    trained on less): summaries over seeds never mix training-set sizes."""
    largest = df.groupby(["study", "task"])["train_fraction"].transform("max")
    return df[df["train_fraction"] == largest]


def t_interval(values, level: float = LEVEL) -> tuple[float, float, int]:
    """Mean, half-width of the t interval of the mean (NaN below two values) and the number of values."""
    x = np.asarray(values, float)
    n = len(x)
    if n < 2:
        return (float(x.mean()) if n else np.nan), np.nan, n
    return float(x.mean()), float(t_quantile(n, level) * x.std(ddof=1) / np.sqrt(n)), n


def t_quantile(n: int, level: float = LEVEL) -> float:
    """Standard errors on each side of the mean of n values that a two-sided t interval spans."""
    return float(stats.t.ppf((1 + level) / 2, n - 1))


def seed_summary(df: pd.DataFrame, metric: str, level: float = LEVEL) -> pd.DataFrame:
    """Mean over seeds, the half-width of its t interval (ci) and the number of seeds, per study x setup x config x
    arch x training fraction x phase, for one metric."""
    rows = with_config(df[(df["status"] == "ok") & (df["metric"] == metric)])
    keys = SUMMARY_KEYS + ["phase"]
    out = [dict(zip(keys, k)) | dict(zip(["mean", "ci", "seeds"], t_interval(g["value"], level)))
           for k, g in rows.groupby(keys, sort=False, dropna=False)]
    return pd.DataFrame(out, columns=[*keys, "mean", "ci", "seeds"])

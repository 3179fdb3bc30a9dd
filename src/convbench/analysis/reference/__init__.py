"""Committed reference runs on GPUs (results/reference/<gpu>/records/): a table per GPU with its hardware, versions
and flags under it. Read with the run's own reader and tidy function (records.load_records, tidy.tidy), from the
folder run.reference; it is not part of the run's tidy.csv. No reference run committed: the flag reference/ran is 0
and the paper says so (paper/sections/reference.tex), never made-up numbers."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from convbench.analysis import tidy
from convbench.analysis.formatting import escape, ms, setup_label
from convbench.analysis.latex import booktabs
from convbench.analysis.records import Record, load_records
from convbench.analysis.study import Run, Study, Table

PHASES = ["forward", "backward", "optimizer", "step"]
ENVIRONMENT = (("device_model", "GPU"), ("versions.torch", "PyTorch"), ("versions.cuda", "CUDA"),
               ("versions.cudnn", "cuDNN"), ("versions.tensorflow", "TensorFlow"),
               ("flags.cudnn_benchmark", "cudnn.benchmark"), ("flags.tf32_matmul", "TF32 matmul"),
               ("flags.tf32_cudnn", "TF32 cuDNN"), ("git_commit", "commit"))


def reference_runs(root: Path | None) -> dict[str, list[Record]]:
    """GPU name -> its records, for every <root>/<gpu>/records holding any."""
    if root is None or not Path(root).is_dir():
        return {}
    return {records.parent.name: load_records(records) for records in sorted(Path(root).glob("*/records"))
            if any(records.rglob("*.json"))}


def environment_line(records: list[Record]) -> str:
    env = tidy.environment(records)
    parts = []
    for column, label in ENVIRONMENT:
        if column in env:
            values = sorted({str(v)[:12] if column == "git_commit" else str(v) for v in env[column].dropna()})
            if values:
                parts.append(f"{label} {', '.join(values)}")
    return escape("; ".join(parts))


def gpu_table(gpu: str, records: list[Record]) -> str:
    df = tidy.tidy(records)
    speed = df[df["task"] == "speed"]
    rows = []
    for (arch, framework, engine), cell in speed.groupby(["arch", "framework", "engine"], sort=True):
        setup = {"Architecture": arch, "Setup": setup_label(framework, engine)}
        if (cell["status"] == "failed").all():
            rows.append(setup | {p: "failed" for p in PHASES})
            continue
        times = cell[cell["metric"] == "time"].set_index("phase")
        rows.append(setup | {p: ms(times.loc[p, "value"], times.loc[p, "iqr"]) if p in times.index else "--"
                             for p in PHASES})
    if not rows:
        return ""
    caption = (f"Reference run on {escape(gpu)}: time per training step and phase, in ms, median (IQR). "
               f"{environment_line(records)}.")
    return booktabs(pd.DataFrame(rows), caption, f"tab:reference-{gpu}", "ll" + "r" * len(PHASES),
                    size=r"\footnotesize")


def table(run: Run) -> str:
    """Every GPU's table, or a comment where none is committed."""
    tables = [gpu_table(gpu, records) for gpu, records in reference_runs(run.reference).items()]
    return "\n".join(t for t in tables if t) or "%\n"


def values(run: Run) -> dict[str, str]:
    runs = reference_runs(run.reference)
    return {"reference/gpus": escape(", ".join(runs)) or "none",
            "reference/records": str(sum(len(r) for r in runs.values()))}


def ran(run: Run) -> bool:
    return bool(reference_runs(run.reference))


STUDY = Study("reference", "Reference GPU runs", tables=(Table("reference", table),), values=values, ran=ran)

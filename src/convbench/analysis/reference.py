"""Committed reference runs on GPUs (results/reference/<gpu>/records/): a table per GPU, with its hardware,
versions and flags beside it. No reference run committed -> a sentence that says so, never made-up numbers."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from convbench.analysis import tidy
from convbench.analysis.tables import booktabs, escape, ms, tt

PHASES = ["forward", "backward", "optimizer", "step"]


def reference_runs(root: Path) -> dict[str, list[dict]]:
    """GPU name -> its records, for every results/reference/<gpu>/records holding any."""
    runs = {}
    for records in sorted(Path(root).glob("*/records")):
        if any(records.rglob("*.json")):
            runs[records.parent.name] = tidy.load_records(records)
    return runs


def _environment_line(records: list[dict]) -> str:
    env = tidy.environment(records)
    parts = []
    for column, label in (("device_model", "GPU"), ("versions.torch", "PyTorch"), ("versions.cuda", "CUDA"),
                          ("versions.cudnn", "cuDNN"), ("versions.tensorflow", "TensorFlow"),
                          ("flags.cudnn_benchmark", "cudnn.benchmark"), ("flags.tf32_matmul", "TF32 matmul"),
                          ("flags.tf32_cudnn", "TF32 cuDNN"), ("git_commit", "commit")):
        if column in env:
            values = sorted({str(v)[:12] if column == "git_commit" else str(v) for v in env[column].dropna()})
            if values:
                parts.append(f"{label} {', '.join(values)}")
    return escape("; ".join(parts))


def reference_table(gpu: str, records: list[dict]) -> str:
    df = tidy.tidy(records)
    speed = df[(df["task"] == "speed")]
    rows = []
    for (arch, framework, engine), cell in speed.groupby(["arch", "framework", "engine"], sort=True):
        if (cell["status"] == "failed").all():
            rows.append({"Architecture": arch, "Setup": tidy.setup_label(framework, engine),
                         **{p: "failed" for p in PHASES}})
            continue
        times = cell[cell["metric"] == "time"].set_index("phase")
        rows.append({"Architecture": arch, "Setup": tidy.setup_label(framework, engine),
                     **{p: ms(times.loc[p, "value"], times.loc[p, "iqr"]) if p in times.index else "--"
                        for p in PHASES}})
    if not rows:
        return ""
    caption = (f"Reference run on {escape(gpu)}: time per training step and phase, in ms, median (IQR). "
               f"{_environment_line(records)}.")
    return booktabs(pd.DataFrame(rows), caption, f"tab:reference-{gpu}", "ll" + "r" * len(PHASES), size=r"\footnotesize")


def analyse_reference(root: Path, out_dir: Path) -> dict[str, str]:
    """tables/reference.tex (every GPU's table, or nothing) and the macro reference/sentence."""
    runs = reference_runs(root)
    tables = [reference_table(gpu, records) for gpu, records in runs.items()]
    (Path(out_dir) / "tables").mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / "tables" / "reference.tex").write_text("\n".join(t for t in tables if t) or "%\n")
    if not runs:
        sentence = (f"No reference run from a GPU is committed in this repository yet: "
                    f"{tt('benchmarks/reference_gpu.py')} makes one on a machine with an NVIDIA GPU, under "
                    f"{tt('results/reference/<gpu>/')}, and this section then shows it.")
    else:
        cells = sum(len(r) for r in runs.values())
        sentence = (f"These numbers come from {cells} records committed under {tt('results/reference/')}, "
                    f"measured on {escape(', '.join(runs))} with the protocol of the CPU run; the hardware, versions "
                    f"and flags of each run are listed under its table.")
    return {"reference/sentence": sentence, "reference/gpus": escape(", ".join(runs)) or "none"}

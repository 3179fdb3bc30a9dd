"""The committed reference runs, read once per folder, and what each table prints beside it: hardware, versions,
commit and flags; and the pairs of runs on one GPU that differ only in TF32."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pandas as pd
import yaml

from convbench.analysis import tidy
from convbench.analysis.formatting import escape
from convbench.analysis.records import load_records, record_paths

KEY = "reference"  # of the macros
PHASES = ["forward", "backward", "optimizer", "step"]
ENVIRONMENT = (("device_model", "GPU"), ("cpu_model", "host"), ("cpu_count", "host cores"), ("python", "Python"),
               ("versions.torch", "PyTorch"), ("versions.cuda", "CUDA"), ("versions.cudnn", "cuDNN"),
               ("versions.tensorflow", "TensorFlow"), ("flags.cudnn_benchmark", "cudnn.benchmark"),
               ("flags.tf32_matmul", "TF32 matmul"), ("flags.tf32_cudnn", "TF32 cuDNN"), ("git_commit", "commit"),
               ("git_dirty", "uncommitted changes"))


@dataclass(frozen=True)
class ReferenceRun:
    name: str  # the folder under results/reference
    tidy: pd.DataFrame
    samples: pd.DataFrame
    environment: pd.DataFrame

    @property
    def tf32(self) -> bool:
        return bool(self.flag("flags.tf32_cudnn"))

    @property
    def device(self) -> str:
        return self.first("device_model") or self.name

    @property
    def commit(self) -> str:
        return (self.first("git_commit") or "unknown")[:12]

    @property
    def measured(self) -> str:
        started = self.environment["started"].dropna() if "started" in self.environment else pd.Series(dtype=str)
        return str(started.min())[:10] if len(started) else "unknown"

    def first(self, column: str):
        values = self.environment[column].dropna() if column in self.environment else []
        return values.iloc[0] if len(values) else None

    def flag(self, column: str) -> bool:
        value = self.first(column)
        return str(value).lower() == "true" if value is not None else False

    def line(self) -> str:
        """'GPU NVIDIA H200; host ...; PyTorch 2.11.0+cu130; ...; commit 54f600559373; measured 2026-11-29' (LaTeX)."""
        parts = []
        for column, label in ENVIRONMENT:
            if column in self.environment:
                values = sorted({str(v)[:12] if column == "git_commit" else str(v)
                                 for v in self.environment[column].dropna()})
                if values:
                    parts.append(f"{label} {', '.join(values)}")
        return escape("; ".join([*parts, f"measured {self.measured}"]))


def record_time(tidy: pd.DataFrame, phase: str) -> float:
    """The cells' time for a phase as their records give it (the median of each one's launch medians; over several
    cells, the median)."""
    return float(tidy[(tidy["metric"] == "time") & (tidy["phase"] == phase)]["value"].median())


@cache
def _read(folder: Path, stamp: tuple) -> ReferenceRun:
    records = load_records(folder)
    return ReferenceRun(folder.parent.name, tidy.tidy(records), tidy.samples(records), tidy.environment(records))


def gpu_runs(root: Path | str) -> list[Path]:
    """The folders under root that hold a run on GPUs (their config.yaml says device: cuda): the reference runs. The
    paper's full-scale CPU run is committed beside them (cpu-paper) as a run of its own, which make paper-full renders."""
    return [folder for folder in sorted(Path(root).glob("*")) if (folder / "config.yaml").is_file()
            and (yaml.safe_load((folder / "config.yaml").read_text()) or {}).get("device") == "cuda"]


def reference_runs(root: Path | None) -> dict[str, ReferenceRun]:
    """Run name -> the run, for every GPU run's <root>/<run>/records holding any record."""
    if root is None or not Path(root).is_dir():
        return {}
    runs = {}
    for folder in (run / "records" for run in gpu_runs(root)):
        files = record_paths(folder)  # not the copies a cut-short launch left in a staging folder
        if files:  # read again only when a file changed
            runs[folder.parent.name] = _read(folder, tuple((str(f), f.stat().st_mtime_ns) for f in files))
    return runs


def tf32_pairs(runs: dict[str, ReferenceRun]) -> list[tuple[ReferenceRun, ReferenceRun]]:
    """(fp32 run, TF32 run) for every two runs on the same GPU whose only difference of flags is TF32."""
    fp32 = [r for r in runs.values() if not r.tf32]
    return [(a, b) for b in runs.values() if b.tf32 for a in fp32
            if a.device == b.device and a.flag("flags.cudnn_benchmark") == b.flag("flags.cudnn_benchmark")]

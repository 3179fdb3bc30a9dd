"""Replicates across process launches: a timed group's cells run in several independent launches of
`python -m convbench run`, one after the other (A B C, A B C, ...), interleaved with the launches of the groups
measured in the same job (the other framework's), and each cell's launches merge into one record.

Within one process the samples of a cell share its allocator state, thread placement, frequency and neighbours; a
second launch of the same code on the same machine can land elsewhere (issue 14 saw 1.56x between two launches). The
record keeps every launch's summary and raw samples under timings.launches; its phases and step summarise all of
them (median: the median of the launch medians), so readers of a single-launch record read it unchanged.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from convbench.cells import Cell, cells_file
from convbench.records import cell_record, host_environment, now, write_record


def folder(stage: Path, launch: int) -> Path:
    return Path(stage) / f"launch-{launch}"


def run_launches(groups: list[tuple[list[Cell], Path, int]], overwrite_ok: bool = False, log=print,
                 launch_one=None) -> None:
    """Run each group's cells (cells, stage, launches) in that many processes, interleaved over the groups: launch 1 of
    every group, then launch 2 of every group, and so on. Launch i of one group then ran next to launch i of the others
    (a PyTorch cell and its TensorFlow counterpart minutes apart at most), so a ratio paired by launch cancels what
    drifts on the machine over a run. Each launch writes into <stage>/launch-<i>/ (resumable like any group: a rerun
    skips the cells a launch already finished); then each cell's launches merge into <stage>/<cell>.json.
    launch_one(cells, out_dir, launch, log) runs one launch and returns its output; by default a
    `python -m convbench run` process (scaling groups pass their own launcher: torchrun, or TF's workers)."""
    launch_one = launch_one or (lambda todo, out, launch, log: _convbench_run(todo, out, launch, overwrite_ok))
    outputs = [{} for _ in groups]  # per group (groups may share a stage), per launch
    for launch in range(1, max((n for *_, n in groups), default=0) + 1):
        for (cells, stage, n), output in zip(groups, outputs):
            if launch <= n:
                output[launch] = f"launch {launch}:\n{launch_one(cells, folder(stage, launch), launch, log)}"
                log(f"launch {launch} of {n}, {cells[0].group}:\n{output[launch]}")
    for (cells, stage, n), output in zip(groups, outputs):
        for cell in cells:
            records = [_read(folder(stage, i) / f"{cell.id}.json") for i in range(1, n + 1)]
            write_record(Path(stage) / f"{cell.id}.json", merge(cell, records, output))


def _convbench_run(cells: list[Cell], out: Path, launch: int, overwrite_ok: bool) -> str:
    """One launch as its own `python -m convbench run` process; its exit status and output."""
    with cells_file(cells, Path(out).parent) as path:
        command = [sys.executable, "-m", "convbench", "run", "--cells-json", path, "--out", str(out),
                   "--launch", str(launch)]
        result = subprocess.run(command + (["--overwrite-ok"] if overwrite_ok else []), capture_output=True,
                                text=True)
    return f"exited with status {result.returncode}:\n{result.stdout}{result.stderr}"


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def merge(cell: Cell, records: list[dict | None], outputs: dict[int, str] | None = None) -> dict:
    """One record from a cell's launches (records[i] from launch i + 1; None where a launch left none). Failed when
    any launch failed or left no record: that launch's error (or its process's output) is the record's."""
    for launch, record in enumerate(records, 1):
        if record is None or record.get("status") != "ok":
            error = (record or {}).get("error") or (outputs or {}).get(launch, "no record")[-4000:]
            error = f"launch {launch} of {len(records)}: {error}"
            return {**record, "status": "failed", "error": error} if record else \
                cell_record(cell, {}, {}, error, host_environment(), now())
    first = records[0]
    timings = [r["timings"] for r in records]
    merged = {**first["timings"],
              "phases": {name: merge_summaries([t["phases"][name] for t in timings]) for name in timings[0]["phases"]},
              "launches": [{"launch": i, "started": r.get("started"), **t}
                           for i, (r, t) in enumerate(zip(records, timings), 1)]}
    for key, value in first["timings"].items():  # the step (and a scaling cell's communication); the median of numbers
        if isinstance(value, dict) and "samples" in value:
            merged[key] = merge_summaries([t[key] for t in timings])
        elif key in ("phase_overhead", "efficiency", "exposed_communication") and value is not None:
            merged[key] = float(np.median([t[key] for t in timings]))
    if first["timings"].get("baseline"):
        merged["baseline"] = merge_baselines(timings)
    return {**first, "timings": merged, "wall_s": sum(r.get("wall_s") or 0.0 for r in records),
            "process": {**first.get("process", {}), "launches": [r.get("process") for r in records]}}


def merge_baselines(timings: list[dict]) -> dict:
    """A scaling cell's no-communication baseline over its launches, phase by phase and its step, as merge_summaries
    merges the cell's own (records before this kept the first launch's baseline: a one-device TensorFlow cell, whose
    baseline is its own step, showed an efficiency of 1.22)."""
    baselines = [t["baseline"] for t in timings]
    return {"phases": {name: merge_summaries([b["phases"][name] for b in baselines])
                       for name in baselines[0].get("phases") or {}},
            "step": merge_summaries([b["step"] for b in baselines])}


def merge_summaries(summaries: list[dict]) -> dict:
    """One phase over launches: the median of the launch medians, the median within-launch IQR and CV, every sample
    (launch after launch), noisy if any launch was, and launch_cv, the between-launch coefficient of variation of the
    launch medians (sample standard deviation over mean)."""
    medians = np.array([s["median"] for s in summaries], float)
    return {"median": float(np.median(medians)), "iqr": float(np.median([s["iqr"] for s in summaries])),
            "cv": float(np.median([s["cv"] for s in summaries])), "n": int(sum(s["n"] for s in summaries)),
            "noisy": any(s.get("noisy") for s in summaries),
            "launch_cv": float(np.std(medians, ddof=1) / np.mean(medians)) if len(medians) > 1 else None,
            "launch_medians": medians.tolist(),
            "samples": [x for s in summaries for x in s["samples"]]}

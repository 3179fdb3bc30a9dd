"""The scaling study's rows and columns of the tidy table (its Study.rows and Study.columns hooks): collectives
replayed alone, the step without them, bytes; the scaling mode, straggler and global batch of each cell."""
from __future__ import annotations

import json

from convbench.analysis.records import Record, Summary
from convbench.analysis.tidy import COLUMNS


def rows(record: Record) -> list[dict]:
    """Several devices: communication replayed alone (comm_time), the step without it (baseline_time, per phase and
    step), exposed communication, and bytes (payload_bytes, wire_bytes, loopback_bytes: phase measured or model;
    payload_match 1/0; collective_calls and collective_bytes per op, phase the op)."""
    timings, comm = record.timings, record.communication
    rows = []

    def add(metric, phase, value, s: Summary | None = None):
        rows.append(dict(zip(COLUMNS, [metric, phase, value, s.iqr, s.cv, s.n, s.noisy, None, None] if s else
                             [metric, phase, value, None, None, None, None, None, None])))

    if timings and timings.communication:
        add("comm_time", "step", timings.communication.median, timings.communication)
    baseline = (timings.baseline or {}) if timings else {}
    for phase, raw in {**(baseline.get("phases") or {}), "step": baseline.get("step")}.items():
        if (s := Summary.read(raw)) is not None:
            add("baseline_time", phase, s.median, s)
    if timings and timings.exposed_communication is not None:
        add("exposed_communication", "step", timings.exposed_communication)
    measured, model = comm.get("measured") or {}, comm.get("model") or {}
    for metric, key in (("payload_bytes", "payload_bytes"), ("wire_bytes", "wire_bytes_per_rank")):
        for phase, source in (("measured", measured), ("model", model)):
            if source.get(key) is not None:
                add(metric, phase, source[key])
    for phase, key in (("measured", "loopback_bytes_per_step"), ("model", "loopback_model_bytes_per_step")):
        if comm.get(key) is not None:
            add("loopback_bytes", phase, comm[key])
    if comm.get("payload_matches_model") is not None:
        add("payload_match", "step", float(bool(comm["payload_matches_model"])))
    calls = measured.get("calls") or []  # per op: how many collectives one step called, and their payload
    for op in dict.fromkeys(c["op"] for c in calls):
        add("collective_calls", op, float(sum(c["op"] == op for c in calls)))
        add("collective_bytes", op, float(sum(c["bytes"] for c in calls if c["op"] == op)))
    return rows



def columns(record: Record) -> dict:
    """A scaling cell's descriptors: scaling mode, straggler delay, global batch, threads per rank, and the arch as
    compact JSON (the byte model rebuilds its ArchSpec from it)."""
    cell = record.cell
    if cell.task != "scaling":
        return {}
    mode = cell.settings.get("scaling", "strong")
    global_batch = record.counts.get("global_batch") or cell.batch_size * (cell.devices if mode == "weak" else 1)
    return {"scaling_mode": mode, "straggler_ms": float(cell.settings.get("straggler_ms") or 0.0),
            "global_batch": int(global_batch), "threads_per_rank": record.counts.get("threads_per_rank"),
            "arch_spec": json.dumps(cell.arch, sort_keys=True, separators=(",", ":"))}

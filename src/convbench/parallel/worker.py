"""Scaling cells in PyTorch, one process per device, started by torchrun:

    python -m torch.distributed.run --nproc-per-node T --master-port P \\
        -m convbench.parallel.worker --cells-json FILE_OR_JSON --out DIR [--timeout-s 60]

Every rank runs every cell (cells with devices == T); rank 0 writes one record per cell, named
cell.id. A cell that raises on any rank becomes a failed record and the next cell runs.
A rank that dies, or a collective that waits past --timeout-s, ends the whole job: torchrun stops
the other ranks and exits non-zero with the failing rank's traceback (the @record decorator).

What a cell measures, with clocks read after every rank's device is idle and every rank has
reached a barrier (torch_parallel.sync):
- the phases of a step (forward; backward, which holds DDP's overlapped all-reduce or the
  tensor-parallel reduce-scatters; optimizer) and whole steps, raw samples kept;
- communication alone: the collectives one step called, replayed on buffers of the same sizes;
- the no-communication baseline: each rank alone on its share, the same shapes and FLOPs with
  the collectives left out (data: the local model without DDP; tensor: local copies instead of
  gathers); efficiency = baseline step / parallel step;
- bytes: every collective's payload as counted during one step, against the closed-form models;
  and, on the CPU, the host's loopback counter over a few steps (all ranks' bytes on the wire).

Cells and their settings: convbench.parallel.cells. The straggler is the last rank; the baseline
runs without it. threads is the job's total: each rank uses threads // T.
"""
import argparse
import os
import socket
import time
import traceback
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import record

from convbench import data, timing
from convbench.backends import torch_backend
from convbench.cells import Cell, read_cells
from convbench.parallel import bytes_model
from convbench.parallel import torch_parallel as tp
from convbench.parallel.cells import global_batch, hybrid_error
from convbench.records import cell_record, host_environment, now, write_record
from convbench.spec import init_weights, step_counts


def check(cell: Cell, world: int) -> None:
    """Everything that would fail the same way on every rank, checked before any collective."""
    if cell.framework != "torch":
        raise ValueError(f"this worker runs PyTorch cells; {cell.framework} cells run in convbench.parallel.tf_worker")
    if cell.devices != world:
        raise ValueError(f"the cell asks for {cell.devices} devices; this job was launched with {world} processes")
    if cell.parallelism == "hybrid":
        raise hybrid_error()
    if cell.parallelism not in tp.PARALLELISMS:
        raise ValueError(f"unknown parallelism {cell.parallelism!r} (known: {', '.join(tp.PARALLELISMS)})")
    if cell.engine != "eager":
        raise ValueError(f"scaling cells run eagerly; engine {cell.engine!r} is not supported here")
    if cell.parallelism == "tensor":
        tp.check_tensor_parallel(cell.arch, world)
    batch = global_batch(cell)
    if cell.parallelism == "data" and batch % world:
        raise ValueError(f"data parallel over {world} ranks needs a global batch divisible by {world}, got {batch}")


def _loopback_bytes() -> int | None:
    """Bytes the host has sent over its loopback interface (Linux), where gloo's local traffic goes."""
    try:
        for line in Path("/proc/net/dev").read_text().splitlines():
            name, _, counters = line.partition(":")
            if name.strip() == "lo":
                return int(counters.split()[8])  # transmit bytes
    except OSError:
        pass
    return None


def _time_trainer(trainer, x, y, sync, protocol: timing.Protocol) -> dict:
    sync()
    t0 = time.perf_counter()
    trainer.step(x, y)  # lazy initialisation, DDP's bucket rebuilding
    sync()
    first = time.perf_counter() - t0
    trainer.log.clear()
    trainer.step(x, y)
    calls = list(trainer.log.calls)  # the collectives of one step
    phases = timing.time_phases(trainer.phases(x, y), sync, protocol)
    whole = timing.time_step(lambda: trainer.step(x, y), sync, protocol)
    return {"first": first, "calls": calls, "phases": phases, "step": whole}


def _wire_loopback(trainer, x, y, sync, steps: int = 5) -> float | None:
    """Loopback bytes per step of all ranks together, less those of as many bare barriers."""
    def count(body):
        sync()
        before = _loopback_bytes()
        for _ in range(steps):
            body()
            dist.barrier()
        sync()
        after = _loopback_bytes()
        return None if before is None else (after - before) / steps

    steps_bytes, barrier_bytes = count(lambda: trainer.step(x, y)), count(lambda: None)
    return None if steps_bytes is None else steps_bytes - barrier_bytes


def measure(cell: Cell, device: torch.device) -> dict:
    rank, world = dist.get_rank(), dist.get_world_size()
    check(cell, world)
    settings, spec = cell.settings, cell.arch
    protocol = timing.fixed(settings)
    threads = max(1, cell.threads // world)
    torch.set_num_threads(threads)
    batch = global_batch(cell)
    x, y = data.synthetic_batch(batch, spec.in_channels, cell.image_size, spec.num_classes, cell.seed)
    x, y = tp.local_batch(cell.parallelism, x, y, rank, world)
    x, y = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    weights = init_weights(spec, cell.seed)
    sync = lambda: tp.sync(device)  # noqa: E731
    straggler = world - 1
    delay_s = settings.get("straggler_ms", 0) / 1000 if rank == straggler else 0.0

    def trainer(communicate: bool):
        made = tp.ParallelTrainer(spec, weights, cell.parallelism, settings["lr"], settings["momentum"], device,
                                  communicate=communicate)
        made.delay_s = delay_s if communicate else 0.0  # the baseline is each device alone, undisturbed
        return made

    parallel = trainer(communicate=True)
    measured = _time_trainer(parallel, x, y, sync, protocol)
    comm = None
    if measured["calls"]:
        comm = timing.time_step(tp.replay(measured["calls"], device), sync, protocol)
    loopback = _wire_loopback(parallel, x, y, sync) if device.type == "cpu" and world > 1 else None
    params_local = parallel.num_params()
    del parallel
    baseline = _time_trainer(trainer(communicate=False), x, y, sync, protocol)

    medians = [None] * world
    dist.all_gather_object(medians, measured["step"].median)
    summary = lambda m: m.summary(protocol.max_iqr_ratio)  # noqa: E731
    counted = tp.CommLog(measured["calls"]).summary(world)

    def modelled(factors) -> dict:
        if cell.parallelism == "data":
            return bytes_model.data_parallel_bytes(spec, world, factors=factors)
        if cell.parallelism == "tensor":
            return bytes_model.tensor_parallel_bytes(spec, cell.image_size, batch, world, factors=factors)
        return {"payload_bytes": 0, "wire_bytes_per_rank": 0.0}

    model = modelled(bytes_model.RING_FACTOR)
    on_backend = modelled(bytes_model.GLOO_FACTOR if dist.get_backend() == "gloo" else bytes_model.RING_FACTOR)
    return {
        "counts": {"global_batch": batch, "local_batch": len(x), "params_local": params_local,
                   "threads_per_rank": threads, "straggler_rank": straggler},
        "timings": {
            "first_step": measured["first"],
            "phase_method": "direct",
            "repeats": protocol.max_repeats,
            "phases": {name: summary(m) for name, m in measured["phases"].items()},
            "step": summary(measured["step"]),
            "communication": summary(comm) if comm else None,
            "rank_step_medians": medians,
            "baseline": {"phases": {name: summary(m) for name, m in baseline["phases"].items()},
                         "step": summary(baseline["step"])},
            "efficiency": baseline["step"].median / measured["step"].median,
            # forward + backward above the baseline's: communication not hidden behind computation
            "exposed_communication": sum(measured["phases"][p].median - baseline["phases"][p].median
                                         for p in ("forward", "backward")),
        },
        "communication": {
            "measured": counted,
            "model": model,
            "payload_matches_model": counted["payload_bytes"] == model["payload_bytes"],
            "loopback_bytes_per_step": loopback,
            "loopback_model_bytes_per_step": world * on_backend["wire_bytes_per_rank"] if loopback is not None else None,
            "note": "payload: the full tensor each collective reduces or gathers, counted on rank 0 during one step "
                    "(DDP: its comm hook per bucket; tensor parallel: each gather and all-reduce, forward and "
                    "backward). wire_bytes_per_rank: payload x 2(t-1)/t for all-reduce, x (t-1)/t for all-gather "
                    "and reduce-scatter (ring algorithms). loopback: the host's lo transmit counter over 5 steps, "
                    "all ranks together, less as many bare barriers; it includes TCP/IP headers and any other "
                    "local traffic. Its model counts gloo's reduce-scatter as the all-reduce gloo runs for it.",
        },
    }


def run_cell(cell: Cell, device: torch.device, context: dict) -> dict:
    started, t0 = now(), time.perf_counter()
    counts, result, error = {}, {}, None
    try:
        counts = step_counts(cell.arch, cell.image_size, global_batch(cell))
        result = measure(cell, device)
        counts.update(result.pop("counts"))
    except Exception:  # a failing cell is data, not the end of the job
        error = f"rank {dist.get_rank()}: {traceback.format_exc()}"
    errors = [None] * dist.get_world_size()
    dist.all_gather_object(errors, error)  # a cell failed if it failed on any rank
    error = next((e for e in errors if e), None)
    environment = {**context["host"], **torch_backend.environment(cell.device), "distributed": context["distributed"]}
    environment["threads"]["intra_op"] = torch.get_num_threads()
    return cell_record(cell, counts, result, error, environment, started, context["process"], time.perf_counter() - t0)


@record
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells-json", required=True, help="a JSON file, or JSON text, holding a list of cells")
    parser.add_argument("--out", required=True, type=Path, help="directory for the records")
    parser.add_argument("--timeout-s", type=float, default=tp.TIMEOUT_S, help="process-group timeout (seconds)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    allocator = timing.steady_allocator()
    cells = read_cells(args.cells_json)
    kinds = {c.device for c in cells}
    if len(kinds) != 1:
        raise ValueError(f"one launch runs cells of one device kind, got {sorted(kinds)}")
    device = tp.init(kinds.pop(), args.timeout_s)
    rank, world = dist.get_rank(), dist.get_world_size()
    torch_backend.configure(max(1, cells[0].threads // world))
    hosts = [None] * world  # where each rank runs: its Slurm node, or its host
    dist.all_gather_object(hosts, os.environ.get("SLURMD_NODENAME") or socket.gethostname())
    context = {"host": host_environment(),
               "process": {"launcher": "torchrun", "world_size": world, "setup_s": time.perf_counter() - t0,
                           "allocator": allocator,
                           "cells": len(cells), "rank_hosts": hosts},
               "distributed": {"backend": dist.get_backend(), "world_size": world, "timeout_s": args.timeout_s,
                               "collectives": "DDP comm hook (data); torch.distributed._functional_collectives "
                                              "(tensor)"}}
    for i, cell in enumerate(cells, 1):
        result = run_cell(cell, device, context)
        if rank == 0:
            write_record(args.out / f"{result['cell_id']}.json", result)
            status = result["status"] if result["status"] == "ok" else result["error"].strip().splitlines()[-1]
            print(f"[{i}/{len(cells)}] {result['cell_id']}: {status} ({result['wall_s']:.1f} s)", flush=True)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

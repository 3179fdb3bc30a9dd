"""Scaling cells in TensorFlow: one process holding n devices (logical CPUs here, GPUs where present).

    python -m convbench.parallel.tf_worker --cells-json FILE_OR_JSON --out DIR

The devices are made once, before TensorFlow initialises, as many as the largest cell asks for;
a cell uses the first `devices` of them. One record per cell (named cell.id), in the shape
of convbench.run's and convbench.parallel.worker's; a cell that raises becomes a failed record.

A step runs as tf.function programs (engine "function"), so its phases come from cumulative
programs timed in the same repeats (convbench.timing.derive_phases): forward; backward = forward
and backward less forward; optimizer = whole step less forward and backward, which holds the
gradients' all-reduce (Keras's optimizer runs it inside apply_gradients) and the update. The
all-reduce is also timed alone, on buffers shaped like the gradients. The no-communication
baseline is one independent network per device, on its share, all in one program.

Tensor parallel (tf_parallel.TensorParallelTrainer): every replica holds a slice of every layer's
filters and runs the whole batch; its collectives (the maps' all-gathers, the logits' all-reduce,
and their gradients') sit inside forward and backward, and are also timed alone on buffers of the
same sizes. Its baseline is the same program with local copies in place of the collectives.
"""
import argparse
import json
import os
import time
import traceback
from pathlib import Path

from convbench import data, timing
from convbench.backends import tf_backend
from convbench.cells import Cell, read_cells
from convbench.parallel import (
    bytes_model,
    launch,
    split,
    tf_parallel,  # noqa: I001 (first: sets TF's log level before TF loads)
)
from convbench.parallel.cells import global_batch, hybrid_error
from convbench.records import cell_record, host_environment, now, write_record
from convbench.spec import init_weights, step_counts

PARALLELISMS = ("none", "data", "tensor")


def check(cell: Cell, devices: list[str]) -> None:
    if cell.framework != "tensorflow":
        raise ValueError(f"this worker runs TensorFlow cells; {cell.framework} cells run in convbench.parallel.worker")
    if cell.parallelism == "hybrid":
        raise hybrid_error()
    if cell.parallelism not in PARALLELISMS:
        raise ValueError(f"unknown parallelism {cell.parallelism!r} (known: {', '.join(PARALLELISMS)})")
    if cell.parallelism == "none" and cell.devices != 1:
        raise ValueError(f"parallelism 'none' runs on one device, the cell asks for {cell.devices}")
    if cell.engine != "function":
        raise ValueError(f"TensorFlow scaling cells run as tf.function programs (engine 'function'); eagerly, "
                         f"MirroredStrategy runs its replicas in Python threads. Got engine {cell.engine!r}")
    if cell.parallelism == "tensor":
        split.check_tensor_parallel(cell.arch, cell.devices)
    elif global_batch(cell) % cell.devices:
        raise ValueError(f"data parallel over {cell.devices} devices needs a global batch divisible by "
                         f"{cell.devices}, got {global_batch(cell)}")


def _time(trainer, inputs, protocol: timing.Protocol) -> dict:
    trainer.sync()
    t0 = time.perf_counter()
    trainer.step(inputs)  # traces and compiles the program
    trainer.sync()
    first = time.perf_counter() - t0
    phases = timing.derive_phases(timing.time_phases(trainer.phases(inputs), trainer.sync, protocol))
    whole = timing.time_step(lambda: trainer.step(inputs), trainer.sync, protocol)
    return {"first": first, "phases": phases, "step": whole}


def measure(cell: Cell, all_devices: list[str], strategy=None) -> dict:
    """strategy: MultiWorkerMirroredStrategy when this is one of several processes (all_devices: its own)."""
    world = strategy.num_replicas_in_sync if strategy else len(all_devices)
    if cell.devices > world or (strategy and cell.devices != world):
        raise ValueError(f"the cell asks for {cell.devices} devices; this job has {world}")
    devices = all_devices if strategy else all_devices[:cell.devices]
    check(cell, devices)
    settings, spec = cell.settings, cell.arch
    # Across processes every worker must run as many steps as the others (as torchrun's ranks): a fixed count.
    protocol = timing.fixed(settings) if strategy else timing.protocol(settings)
    batch = global_batch(cell)
    x, y = data.synthetic_batch(batch, spec.in_channels, cell.image_size, spec.num_classes, cell.seed)
    weights = init_weights(spec, cell.seed)
    lr, momentum = settings["lr"], settings["momentum"]
    n = cell.devices
    delays = [0.0] * (n - 1) + [settings.get("straggler_ms", 0) / 1000]

    if cell.parallelism == "tensor":  # the baseline: each device's part alone, local copies for the gathers
        trainer = tf_parallel.TensorParallelTrainer(spec, weights, lr, momentum, devices, batch, delays_s=delays,
                                                    strategy=strategy)
        baseline = tf_parallel.TensorParallelTrainer(spec, weights, lr, momentum, devices, batch, communicate=False,
                                                     strategy=strategy)
    else:  # the baseline: this process's devices alone, each on its share
        baseline = tf_parallel.AloneTrainers(spec, weights, lr, momentum, devices, batch * len(devices) // n)
        trainer = baseline if cell.parallelism == "none" else tf_parallel.MirroredTrainer(
            spec, weights, lr, momentum, devices, batch, delays_s=delays, strategy=strategy)
    inputs = trainer.distribute(x, y)
    measured = _time(trainer, inputs, protocol)
    local = batch if cell.parallelism == "tensor" else batch // n
    result = {"counts": {"global_batch": batch, "local_batch": local, "straggler_device": n - 1}}
    timings = {"first_step": measured["first"], "phase_method": "derived",
               "phases": {name: m.summary(protocol.max_iqr_ratio) for name, m in measured["phases"].items()},
               "step": measured["step"].summary(protocol.max_iqr_ratio), "communication": None}
    model = {"payload_bytes": 0, "wire_bytes_per_rank": 0.0}
    payload = 0
    if cell.parallelism == "data":
        buffers = trainer.gradient_buffers()
        trainer.all_reduce_program(buffers)
        comm = timing.time_step(lambda: trainer.all_reduce_program(buffers), trainer.sync, protocol)
        timings["communication"] = comm.summary(protocol.max_iqr_ratio)
        payload = trainer.traced_payload_bytes
        model = bytes_model.data_parallel_bytes(spec, n)
    elif cell.parallelism == "tensor":
        comm = timing.time_step(trainer.communication_program(), trainer.sync, protocol)
        timings["communication"] = comm.summary(protocol.max_iqr_ratio)
        payload = trainer.payload_bytes()
        # TensorFlow's all_gather's gradient all-reduces the whole gradient, as gloo runs a reduce-scatter
        model = bytes_model.tensor_parallel_bytes(spec, cell.image_size, batch, n, factors=bytes_model.GLOO_FACTOR)
    base = measured if cell.parallelism == "none" else _time(baseline, baseline.distribute(x, y), protocol)
    timings["baseline"] = {"phases": {name: m.summary(protocol.max_iqr_ratio) for name, m in base["phases"].items()},
                           "step": base["step"].summary(protocol.max_iqr_ratio)}
    timings["efficiency"] = base["step"].median / measured["step"].median
    result["timings"] = timings
    result["communication"] = {
        "measured": {"payload_bytes": payload},
        "model": model,
        "payload_matches_model": payload == model["payload_bytes"],
        "note": "payload: data parallel, the gradients one replica hands to Keras's all-reduce (apply_gradients); "
                "tensor parallel, the full maps of every ReplicaContext.all_gather and the logits' all_reduce, "
                "forward, and their gradients' all-reduces, backward; counted as the step program is traced. On "
                "logical CPU devices the collectives are copies inside one process (ReductionToOneDevice), so the "
                "ring model's wire bytes do not apply; on GPUs MirroredStrategy uses NCCL.",
    }
    return result


def run_cell(cell: Cell, devices: list[str], context: dict, strategy=None) -> dict:
    started, t0 = now(), time.perf_counter()
    counts, result, error = {}, {}, None
    try:
        counts = step_counts(cell.arch, cell.image_size, global_batch(cell))
        result = measure(cell, devices, strategy)
        counts.update(result.pop("counts"))
    except Exception:  # a failing cell is data, not the end of the run
        error = traceback.format_exc()
    environment = {**context["host"], **tf_backend.environment(cell.device),
                   "distributed": {**context["distributed"], "devices": devices[:cell.devices]}}
    return cell_record(cell, counts, result, error, environment, started, context["process"], time.perf_counter() - t0)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells-json", required=True, help="a JSON file, or JSON text, holding a list of cells")
    parser.add_argument("--out", required=True, type=Path, help="directory for the records")
    parser.add_argument("--multi-worker", action="store_true",
                        help="one of several processes, one per node, under MultiWorkerMirroredStrategy: the cluster "
                             "from TF_CONFIG, else from Slurm (launch.tf_config_from_slurm); worker 0 writes")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    allocator = timing.steady_allocator()
    cells = read_cells(args.cells_json)
    kinds, threads = {c.device for c in cells}, {c.threads for c in cells}
    if len(kinds) != 1 or len(threads) != 1:
        raise ValueError("one process runs cells of one device kind and one thread count")
    device = kinds.pop()
    strategy, writer = None, True
    if args.multi_worker:
        if "TF_CONFIG" not in os.environ:
            os.environ["TF_CONFIG"] = launch.tf_config_from_slurm()
        # On the CPU a worker holds one device (MultiWorkerMirroredStrategy uses CPU:0 only); on GPUs its node's.
        per_node = 1 if device == "cpu" else max(c.devices // c.settings.get("nodes", 1) for c in cells)
        tf_parallel.configure(per_node, threads.pop(), device)
        strategy = tf_parallel.multi_worker()
        devices, writer = list(strategy.extended.worker_devices), strategy.cluster_resolver.task_id == 0
        launcher, cross = "srun, one worker per node (TF_CONFIG)", "CollectiveAllReduce (gRPC; NCCL between GPUs)"
        workers = json.loads(os.environ["TF_CONFIG"])["cluster"]["worker"]
    else:
        devices = tf_parallel.configure(max(c.devices for c in cells), threads.pop(), device)
        launcher, workers = "one process", None
        cross = "ReductionToOneDevice" if device == "cpu" else "MirroredStrategy's default (NCCL all-reduce)"
    context = {"host": host_environment(),
               "process": {"launcher": launcher, "devices_made": len(devices), "setup_s": time.perf_counter() - t0,
                           "allocator": allocator,
                           "cells": len(cells), "workers": workers},
               "distributed": {"strategy": "tf.distribute.MultiWorkerMirroredStrategy" if strategy
                               else "tf.distribute.MirroredStrategy", "cross_device_ops": cross}}
    for i, cell in enumerate(cells, 1):
        result = run_cell(cell, devices, context, strategy)
        if not writer:
            continue
        write_record(args.out / f"{result['cell_id']}.json", result)
        status = result["status"] if result["status"] == "ok" else result["error"].strip().splitlines()[-1]
        print(f"[{i}/{len(cells)}] {result['cell_id']}: {status} ({result['wall_s']:.1f} s)", flush=True)


if __name__ == "__main__":
    main()

"""Run cells: import a framework once per process, run each cell, write one record per cell.

A cell that raises becomes a record with status "failed" and the traceback; the
other cells of the process still run. run_group makes a group's run resumable, and keeps ok records.
"""
from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from convbench import data, learned, timing
from convbench.cells import Cell
from convbench.records import SCHEMA_VERSION, finished, host_environment, now, publish, write_record
from convbench.spec import forward_flops, init_weights, param_count, step_bytes, step_flops

BACKENDS = {"torch": "convbench.backends.torch_backend", "tensorflow": "convbench.backends.tf_backend"}


def _protocol(cell: Cell) -> timing.Protocol:
    keys = ("warmup", "min_repeats", "max_repeats", "max_seconds", "max_iqr_ratio")
    return timing.Protocol(**{k: cell.settings[k] for k in keys})


def measure_speed(cell: Cell, backend) -> dict:
    """Time forward, backward and optimizer phases, and whole steps, on one synthetic batch."""
    protocol = _protocol(cell)
    x, y = data.synthetic_batch(cell.batch_size, cell.arch.in_channels, cell.image_size, cell.arch.num_classes, cell.seed)
    trainer = backend.Trainer(cell.arch, init_weights(cell.arch, cell.seed), cell.settings["lr"],
                              cell.settings["momentum"], cell.device, cell.engine)
    x, y = trainer.to_device(x, y)
    trainer.sync()
    t0 = time.perf_counter()
    trainer.step(x, y)  # the first step pays for tracing, compilation and lazy initialisation
    trainer.sync()
    first_step = time.perf_counter() - t0
    phases = timing.time_phases(trainer.phases(x, y), trainer.sync, protocol)
    if trainer.phase_method == "derived":
        phases = timing.derive_phases(phases)
    whole = timing.time_step(lambda: trainer.step(x, y), trainer.sync, protocol)
    return {
        "counts": {"params_framework": trainer.num_params()},
        "memory": trainer.memory(x, y),
        "timings": {
            "first_step": first_step,
            "phase_method": trainer.phase_method,
            "phases": {name: m.summary(protocol.max_iqr_ratio) for name, m in phases.items()},
            "step": whole.summary(protocol.max_iqr_ratio),
        },
        "engine": {"name": cell.engine, "compile_s": first_step - whole.median, "warnings": trainer.warnings,
                   "optimizer": trainer.optimizer_name, "precision": "float32"},
    }


def measure_layers(cell: Cell, backend) -> dict:
    """One convolution of a studied network, and its activation, each direction timed on its own."""
    protocol = _protocol(cell)
    [block] = cell.arch.blocks
    tensors = data.layer_tensors(cell.arch.in_channels, block.width, block.kernel, block.pieces, cell.batch_size,
                                 cell.image_size, cell.seed)
    phases, sync = backend.layer_phases(block, tensors, cell.device)
    measured = timing.time_phases(phases, sync, protocol)
    del measured["total"]  # a sum of unrelated operations
    return {"timings": {"phase_method": "direct",
                        "phases": {name: m.summary(protocol.max_iqr_ratio) for name, m in measured.items()}}}


def measure_ceilings(backend, device: str, settings: dict) -> dict:
    """The device's own ceilings for the roofline, measured by this framework in this process."""
    protocol = timing.Protocol(warmup=2, min_repeats=5, max_repeats=20, max_seconds=3.0, max_iqr_ratio=0.02)
    programs, work, sync = backend.ceilings(device, settings["gemm_n"], settings["copy_mib"] * 2**20)
    result = {"gemm_n": settings["gemm_n"], "copy_bytes": settings["copy_mib"] * 2**20}
    for name, key in (("gemm", "gemm_flops"), ("stream", "memory_bandwidth")):
        seconds = timing.time_step(programs[name], sync, protocol)
        rates = timing.Measurement([work[name] / s for s in seconds.samples])
        # A ceiling is what the device can do: the best repeat, beside the usual summary.
        result[key] = {**rates.summary(protocol.max_iqr_ratio), "best": max(rates.samples)}
    return result


def _evaluate(trainer, x: np.ndarray, y: np.ndarray, batch_size: int = 512) -> tuple[float, float]:
    loss = correct = 0.0
    for i in range(0, len(x), batch_size):
        batch_loss, batch_correct = trainer.evaluate(*trainer.to_device(x[i:i + batch_size], y[i:i + batch_size]))
        loss, correct = loss + batch_loss, correct + batch_correct
    return loss / len(x), correct / len(x)


def _learned_state(weights: dict[str, np.ndarray], spec) -> dict:
    """Per learned block: the mean learned radius, and the maps whose test-time gate is open."""
    state = {}
    for i, block in enumerate(spec.blocks):
        if block.init_radius is not None:
            state[f"blocks.{i}.radius"] = float(np.mean(weights[f"blocks.{i}.convs.0.radius"]))
        if block.gates:
            state[f"blocks.{i}.open_maps"] = int((learned.test_gate(weights[f"blocks.{i}.gate.log_alpha"]) > 0).sum())
    return state


def shrink_and_measure(cell: Cell, backend, trainer, dataset) -> dict:
    """Crop and prune the trained network to a plain one; check it computes the same; time both."""
    plain, weights, kept = learned.shrink(cell.arch, backend.export_weights(trainer.model))
    shrunk = backend.Trainer(plain, weights, cell.settings["lr"], cell.settings["momentum"], cell.device, cell.engine,
                             optimizer=cell.settings["optimizer"])
    x_test, _ = trainer.to_device(dataset.x_test, dataset.y_test)
    difference = np.abs(trainer.logits(x_test) - shrunk.logits(shrunk.to_device(dataset.x_test, dataset.y_test)[0]))
    accuracy = _evaluate(shrunk, dataset.x_test, dataset.y_test)[1]  # before timing: timed steps train on
    protocol = timing.Protocol(**cell.settings["timing"])
    x, y = data.synthetic_batch(cell.batch_size, cell.arch.in_channels, cell.image_size, cell.arch.num_classes, cell.seed)
    steps = {}
    for name, net in (("learned", trainer), ("shrunk", shrunk)):
        inputs = net.to_device(x, y)
        steps[name] = timing.time_step(lambda: net.step(*inputs), net.sync, protocol).summary(protocol.max_iqr_ratio)
    return {"shrunk_arch": plain.to_dict(), "kept": [{"kernel": k, "maps": m} for k, m in kept],
            "params": param_count(plain), "flops_forward": forward_flops(plain, cell.image_size),
            "test_accuracy": accuracy,
            "max_logit_difference": float(difference.max()), "step": steps}


def train(cell: Cell, backend) -> dict:
    """Train on the configured data set; loss and accuracy on both splits after every epoch. A network
    that learns its kernel sizes or filter counts is then shrunk to a plain one, checked and timed."""
    settings, source = cell.settings, cell.settings["data"]
    dataset = data.load(source["dataset"], source.get("root"), seed=cell.seed,
                        test_fraction=source["test_fraction"], train_fraction=cell.train_fraction)
    trainer = backend.Trainer(cell.arch, init_weights(cell.arch, cell.seed), settings["lr"], settings["momentum"],
                              cell.device, cell.engine, seed=cell.seed, optimizer=settings["optimizer"])
    is_learned = any(block.learned for block in cell.arch.blocks)
    epochs = []
    for epoch in range(1, settings["epochs"] + 1):
        t0 = time.perf_counter()
        for index in data.batches(len(dataset.y_train), cell.batch_size, cell.seed, epoch):
            trainer.train_step(*trainer.to_device(dataset.x_train[index], dataset.y_train[index]))
        seconds = time.perf_counter() - t0
        train_loss, train_accuracy = _evaluate(trainer, dataset.x_train, dataset.y_train)
        test_loss, test_accuracy = _evaluate(trainer, dataset.x_test, dataset.y_test)
        epochs.append(dict(epoch=epoch, train_loss=train_loss, train_accuracy=train_accuracy,
                           test_loss=test_loss, test_accuracy=test_accuracy, seconds=seconds))
        if is_learned:
            epochs[-1]["learned"] = _learned_state(backend.export_weights(trainer.model), cell.arch)
    result = {
        "counts": {"params_framework": trainer.num_params()},
        "training": {"epochs": epochs, "dataset": {"name": dataset.name, "train_size": len(dataset.y_train),
                                                    "test_size": len(dataset.y_test)}},
    }
    if is_learned:
        result["learned"] = shrink_and_measure(cell, backend, trainer, dataset)
    return result


TASKS = {"speed": measure_speed, "layers": measure_layers, "train": train}


def _counts(cell: Cell) -> dict:
    if cell.task == "layers":
        [conv] = cell.arch.convs()
        return {"flops_forward": 2 * conv.kernel**2 * conv.in_channels * conv.out_channels
                * cell.image_size**2 * cell.batch_size}
    return {"params": param_count(cell.arch), "flops_forward": forward_flops(cell.arch, cell.image_size),
            "flops_step": step_flops(cell.arch, cell.image_size, cell.batch_size),
            "bytes_step": step_bytes(cell.arch, cell.image_size, cell.batch_size)}


def run_cell(cell: Cell, backend, context: dict) -> dict:
    started, t0 = now(), time.perf_counter()
    record = {
        "schema_version": SCHEMA_VERSION,
        "cell_id": cell.id,
        "cell": cell.to_dict(),
        "counts": _counts(cell),
    }
    try:
        result = TASKS[cell.task](cell, backend)
        record["counts"].update(result.pop("counts", {}))
        record.update(result, status="ok", error=None)
    except Exception:  # a failing cell is data, not the end of the run
        record.update(status="failed", error=traceback.format_exc())
    try:
        environment = {**context["host"], **backend.environment(cell.device)}
    except Exception:
        environment = {**context["host"], "error": traceback.format_exc()}
    record.update(process=context["process"], environment=environment, started=started,
                  wall_s=time.perf_counter() - t0)
    return record


def run_cells(cells: list[Cell], out_dir: Path, log=print) -> list[dict]:
    """Run cells of one framework in this process; one record per cell in out_dir."""
    frameworks = {c.framework for c in cells}
    if len(frameworks) != 1 or len({c.threads for c in cells}) != 1:
        raise ValueError("run_cells takes cells of one framework and one thread count")
    t0 = time.perf_counter()
    backend = importlib.import_module(BACKENDS[frameworks.pop()])
    backend.configure(cells[0].threads, **cells[0].settings.get("cuda", {}))
    context = {"host": host_environment(), "process": {"import_s": time.perf_counter() - t0, "cells": len(cells)}}
    log(f"imported {backend.NAME} in {context['process']['import_s']:.1f} s")
    if any(c.task == "speed" for c in cells):
        try:
            ceilings = measure_ceilings(backend, cells[0].device, cells[0].settings)
            log(f"ceilings: {ceilings['gemm_flops']['median'] / 1e9:.1f} GFLOP/s fp32 GEMM, "
                f"{ceilings['memory_bandwidth']['median'] / 1e9:.1f} GB/s stream")
        except Exception:  # the cells are still worth running; the roofline will say what is missing
            ceilings = {"error": traceback.format_exc()}
        context["process"]["ceilings"] = ceilings
    records = []
    for i, cell in enumerate(cells, 1):
        record = run_cell(cell, backend, context)
        write_record(Path(out_dir) / f"{cell.id}.json", record)
        status = record["status"] if record["status"] == "ok" else record["error"].strip().splitlines()[-1]
        log(f"[{i}/{len(cells)}] {cell.id}: {status} ({record['wall_s']:.1f} s)")
        records.append(record)
    return records


def run_scaling(cells: list[Cell], out_dir: Path, log=print) -> None:
    """Run scaling cells of one framework and device count in their own launcher: torchrun with one
    process per device for PyTorch, one process with logical devices for TensorFlow. If the launcher
    itself dies, each cell it left without a record gets a failed one carrying the launcher's output."""
    devices = {c.devices for c in cells}
    frameworks = {c.framework for c in cells}
    if len(devices) != 1 or len(frameworks) != 1:
        raise ValueError("run_scaling takes cells of one framework and one device count")
    cells_json = json.dumps([c.to_dict() for c in cells])
    if frameworks.pop() == "torch":
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={devices.pop()}",
                    "-m", "convbench.parallel.worker"]
    else:
        launcher = [sys.executable, "-m", "convbench.parallel.tf_worker"]
    out_dir = Path(out_dir)
    result = subprocess.run([*launcher, "--cells-json", cells_json, "--out", str(out_dir)],
                            capture_output=True, text=True)
    log(result.stdout + result.stderr)
    if result.returncode == 0:
        return
    error = f"the launcher exited with status {result.returncode}:\n" + (result.stdout + result.stderr)[-4000:]
    for cell in cells:
        if not (out_dir / f"{cell.id}.json").exists():
            write_record(out_dir / f"{cell.id}.json", {
                "schema_version": SCHEMA_VERSION, "cell_id": cell.id, "cell": cell.to_dict(), "counts": {},
                "status": "failed", "error": error, "environment": host_environment(), "started": now()})


def check_data(cells: list[Cell]) -> None:
    """Read each data set the train cells use once, before any cell runs: a missing or broken file is for
    the user to fix (a DataError naming it), not a failed record per cell."""
    sources = {(c.settings["data"]["dataset"], c.settings["data"].get("root")) for c in cells if c.task == "train"}
    for dataset, root in sorted(sources, key=str):
        if dataset != "digits":
            data.load(dataset, root)


def run_group(cells: list[Cell], out_dir: Path, overwrite_ok: bool = False, log=print) -> None:
    """Run one group's cells (one framework; one device count for scaling cells), resumably.

    Records are written to <out_dir>.partial/ first and copied into out_dir once every cell has run; then
    the staging folder goes. A run killed half way leaves its finished records there, and Snakemake, which
    empties a job's output folder before running it again, does not touch them: the rerun skips every cell
    whose ok record of the same parameters is staged (or already in out_dir), and runs the rest.
    overwrite_ok runs every cell again and lets a failed record replace an ok one (records.publish)."""
    out_dir = Path(out_dir)
    stage = out_dir.with_name(out_dir.name + ".partial")
    todo = []
    for cell in cells:
        done = next((d for d in (stage, out_dir) if finished(d / f"{cell.id}.json", cell)), None)
        if done and not overwrite_ok:
            log(f"{cell.id}: not run again, an ok record of it is in {done} (--overwrite-ok runs it)")
        else:
            todo.append(cell)
        if done != stage or overwrite_ok:  # a staged record stays only to be used: not a stale one
            (stage / f"{cell.id}.json").unlink(missing_ok=True)
    if todo:
        (run_scaling if todo[0].task == "scaling" else run_cells)(todo, stage, log=log)
    for cell in cells:
        if (stage / f"{cell.id}.json").exists():
            note = publish(stage / f"{cell.id}.json", out_dir, overwrite_ok)
            if note:
                log(note)
    shutil.rmtree(stage, ignore_errors=True)

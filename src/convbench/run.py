"""Run cells: import a framework once per process, run each cell, write one record per cell.

A cell that raises becomes a record with status "failed" and the traceback; the
other cells of the process still run.
"""
from __future__ import annotations

import importlib
import time
import traceback
from pathlib import Path

import numpy as np

from convbench import data, timing
from convbench.cells import Cell
from convbench.records import SCHEMA_VERSION, host_environment, now, write_record
from convbench.spec import forward_flops, init_weights, param_count

BACKENDS = {"torch": "convbench.backends.torch_backend", "tensorflow": "convbench.backends.tf_backend"}


def measure_speed(cell: Cell, backend) -> dict:
    """Time forward, backward and optimizer phases, and whole steps, on one synthetic batch."""
    settings = cell.settings
    protocol = timing.Protocol(**{k: settings[k] for k in ("warmup", "min_repeats", "max_repeats", "max_seconds")})
    x, y = data.synthetic_batch(cell.batch_size, cell.arch.in_channels, cell.image_size, cell.arch.num_classes, cell.seed)
    trainer = backend.Trainer(cell.arch, init_weights(cell.arch, cell.seed), settings["lr"], settings["momentum"], cell.device)
    x, y = trainer.to_device(x, y)

    def step():
        trainer.forward(x, y)
        trainer.backward()
        trainer.optimizer_step()

    trainer.sync()
    t0 = time.perf_counter()
    step()  # the first step pays for lazy initialisation (and compilation, in graph engines)
    trainer.sync()
    first_step = time.perf_counter() - t0
    phases = timing.time_phases(
        {"forward": lambda: trainer.forward(x, y), "backward": trainer.backward, "optimizer": trainer.optimizer_step},
        trainer.sync, protocol)
    whole = timing.time_step(step, trainer.sync, protocol)
    return {
        "counts": {"params_framework": trainer.num_params()},
        "timings": {
            "first_step": first_step,
            "phases": {name: m.summary() for name, m in phases.items()},
            "step": whole.summary(),
        },
    }


def _evaluate(trainer, x: np.ndarray, y: np.ndarray, batch_size: int = 512) -> tuple[float, float]:
    loss = correct = 0.0
    for i in range(0, len(x), batch_size):
        batch_loss, batch_correct = trainer.evaluate(*trainer.to_device(x[i:i + batch_size], y[i:i + batch_size]))
        loss, correct = loss + batch_loss, correct + batch_correct
    return loss / len(x), correct / len(x)


def train(cell: Cell, backend) -> dict:
    """Train on the configured data set; loss and accuracy on both splits after every epoch."""
    settings, source = cell.settings, cell.settings["data"]
    dataset = data.load(source["dataset"], source.get("root"), seed=cell.seed,
                        test_fraction=source["test_fraction"], train_fraction=source["train_fraction"])
    trainer = backend.Trainer(cell.arch, init_weights(cell.arch, cell.seed), settings["lr"], settings["momentum"], cell.device)
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
    return {
        "counts": {"params_framework": trainer.num_params()},
        "training": {"epochs": epochs, "dataset": {"name": dataset.name, "train_size": len(dataset.y_train),
                                                    "test_size": len(dataset.y_test)}},
    }


TASKS = {"speed": measure_speed, "train": train}


def run_cell(cell: Cell, backend, context: dict) -> dict:
    started, t0 = now(), time.perf_counter()
    record = {
        "schema_version": SCHEMA_VERSION,
        "cell_id": cell.id,
        "cell": cell.to_dict(),
        "counts": {"params": param_count(cell.arch), "flops_forward": forward_flops(cell.arch, cell.image_size)},
    }
    try:
        result = TASKS[cell.task](cell, backend)
        record["counts"].update(result.pop("counts"))
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
    backend.configure(cells[0].threads)
    context = {"host": host_environment(), "process": {"import_s": time.perf_counter() - t0, "cells": len(cells)}}
    log(f"imported {backend.NAME} in {context['process']['import_s']:.1f} s")
    records = []
    for i, cell in enumerate(cells, 1):
        record = run_cell(cell, backend, context)
        write_record(Path(out_dir) / f"{cell.id}.json", record)
        status = record["status"] if record["status"] == "ok" else record["error"].strip().splitlines()[-1]
        log(f"[{i}/{len(cells)}] {cell.id}: {status} ({record['wall_s']:.1f} s)")
        records.append(record)
    return records

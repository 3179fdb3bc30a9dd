"""Run cells: import a framework once per process, run each cell, write one record per cell.

A cell that raises becomes a record with status "failed" and the traceback; the
other cells of the process still run. run_groups makes a job's run resumable, and keeps ok records.
"""
from __future__ import annotations

import importlib
import shutil
import subprocess
import time
import traceback
from pathlib import Path

import numpy as np
from scipy import stats

from convbench import data, learned, timing
from convbench.cells import FILE_DATASETS, PLANTED_KEYS, Cell, cells_file
from convbench.files import check_writable, claimed
from convbench.launches import run_launches
from convbench.peak import theoretical_peak
from convbench.records import cell_record, finished, host_environment, now, publish, write_record
from convbench.spec import conv_flops, forward_flops, init_weights, param_count, step_bytes, step_counts

BACKENDS = {"torch": "convbench.backends.torch_backend", "tensorflow": "convbench.backends.tf_backend"}


TIMED = ("speed", "layers", "scaling")  # tasks measured in several launches (speed.launches, scaling.launches)


def measure_speed(cell: Cell, backend) -> dict:
    """Time forward, backward and optimizer phases, and whole steps, on one synthetic batch."""
    protocol = timing.protocol(cell.settings)
    x, y = data.synthetic_batch(cell.batch_size, cell.arch.in_channels, cell.image_size, cell.arch.num_classes, cell.seed)
    # the step the train cells take: their optimizer (a record made before speed cells named one timed SGD)
    trainer = backend.Trainer(cell.arch, init_weights(cell.arch, cell.seed), cell.settings["lr"],
                              cell.settings["momentum"], cell.device, cell.engine,
                              optimizer=cell.settings.get("optimizer", "sgd"))
    x, y = trainer.to_device(x, y)
    trainer.sync()
    t0 = time.perf_counter()
    trainer.step(x, y)  # the first step pays for tracing, compilation and lazy initialisation
    trainer.sync()
    first_step = time.perf_counter() - t0
    phases = timing.time_phases(trainer.phases(x, y), trainer.sync, protocol)
    if trainer.phase_method == "derived":
        phases = timing.derive_phases(phases)
    whole = timing.time_step(lambda: trainer.step(x, y), trainer.sync, protocol, getattr(trainer, "clock", None))
    return {
        "counts": {"params_framework": trainer.num_params()},
        "memory": trainer.memory(x, y),
        "timings": {
            "first_step": first_step,
            "phase_method": trainer.phase_method,
            "phases": {name: m.summary(protocol.max_iqr_ratio) for name, m in phases.items()},
            "step": whole.summary(protocol.max_iqr_ratio),
            # what the synchronisations around each phase add to a step that runs back to back
            "phase_overhead": phases["total"].median / whole.median,
        },
        "engine": {"name": cell.engine, "compile_s": first_step - whole.median, "warnings": trainer.warnings,
                   "optimizer": trainer.optimizer_name, "precision": "float32"},
    }


def measure_layers(cell: Cell, backend) -> dict:
    """One convolution of a studied network, and its activation, each direction timed on its own."""
    protocol = timing.protocol(cell.settings)
    [block] = cell.arch.blocks
    tensors = data.layer_tensors(cell.arch.in_channels, block.width, block.kernel, block.pieces, cell.batch_size,
                                 cell.image_size, cell.seed)
    phases, sync = backend.layer_phases(block, tensors, cell.device)
    measured = timing.time_phases(phases, sync, protocol)
    del measured["total"]  # a sum of unrelated operations
    return {"timings": {"phase_method": "direct",
                        "phases": {name: m.summary(protocol.max_iqr_ratio) for name, m in measured.items()}}}


def measure_ceilings(backend, device: str, settings: dict, threads: int = 1) -> dict:
    """The device's own ceilings for the roofline, measured by this framework in this process."""
    protocol = timing.Protocol(warmup=2, min_repeats=5, max_repeats=20, max_seconds=3.0, max_iqr_ratio=0.02)
    programs, work, sync = backend.ceilings(device, settings["gemm_n"], settings["copy_mib"] * 2**20)
    result = {"gemm_n": settings["gemm_n"], "copy_bytes": settings["copy_mib"] * 2**20}
    for name, key in (("gemm", "gemm_flops"), ("stream", "memory_bandwidth")):
        seconds = timing.time_step(programs[name], sync, protocol)
        rates = timing.Measurement([work[name] / s for s in seconds.samples])
        # A ceiling is what the device can do: the best repeat, beside the usual summary.
        result[key] = {**rates.summary(protocol.max_iqr_ratio), "best": max(rates.samples)}
    # Beside what was measured, what the hardware can do at most (convbench.peak): no timed cell may pass it.
    model = backend.environment(device).get("device_model") if device == "cuda" else None
    result["peak_flops"] = theoretical_peak(device, threads, model, settings.get("cuda", {}).get("tf32", False))
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
            state[f"blocks.{i}.radius"] = float(np.mean(np.exp(weights[f"blocks.{i}.convs.0.log_radius"])))
        if block.gates:
            state[f"blocks.{i}.open_maps"] = int((learned.test_gate(weights[f"blocks.{i}.gate.log_alpha"]) > 0).sum())
    return state


SHRUNK_ROUNDS = 4  # interleaved timing rounds of a learned network and its shrunk copy


def shrink_and_measure(cell: Cell, backend, trainer, dataset) -> dict:
    """Crop and prune the trained network to a plain one; check it computes the same; time both."""
    plain, weights, kept = learned.shrink(cell.arch, backend.export_weights(trainer.model))
    shrunk = backend.Trainer(plain, weights, cell.settings["lr"], cell.settings["momentum"], cell.device, cell.engine,
                             optimizer=cell.settings["optimizer"])
    x_test, _ = trainer.to_device(dataset.x_test, dataset.y_test)
    difference = np.abs(trainer.logits(x_test) - shrunk.logits(shrunk.to_device(dataset.x_test, dataset.y_test)[0]))
    accuracy = _evaluate(shrunk, dataset.x_test, dataset.y_test)[1]  # before timing: timed steps train on
    protocol = timing.protocol(cell.settings["timing"])
    x, y = data.synthetic_batch(cell.batch_size, cell.arch.in_channels, cell.image_size, cell.arch.num_classes, cell.seed)
    # The two networks take turns, round after round, the order flipping each round, so that a drift of a shared
    # machine's load falls on both alike (as the speed cells' launches take turns); a round's ratio pairs its two.
    nets = {"learned": (trainer, trainer.to_device(x, y)), "shrunk": (shrunk, shrunk.to_device(x, y))}
    samples, rounds = {name: [] for name in nets}, []
    for r in range(SHRUNK_ROUNDS):
        medians = {}
        for name in (list(nets) if r % 2 == 0 else list(nets)[::-1]):
            net, inputs = nets[name]
            m = timing.time_step(lambda: net.step(*inputs), net.sync, protocol)
            samples[name] += m.samples
            medians[name] = m.median
        rounds.append(medians)
    steps = {name: timing.Measurement(s).summary(protocol.max_iqr_ratio) for name, s in samples.items()}
    return {"shrunk_arch": plain.to_dict(), "kept": [{"kernel": k, "maps": m} for k, m in kept],
            "params": param_count(plain), "flops_forward": forward_flops(plain, cell.image_size),
            "test_accuracy": accuracy,
            "max_logit_difference": float(difference.max()), "step": steps, "step_rounds": rounds}


# What the plateau criterion watches, and which way is better: +1 larger, -1 smaller.
MONITORS = {"train_accuracy": 1, "train_loss": -1}


def converged(epochs: list[dict], criterion: dict) -> bool:
    """Whether training has levelled off after the last of `epochs` (convbench.cells._criterion): past
    min_epochs, the best value of the monitored quantity (train accuracy, or train loss) over the last `patience`
    epochs is not min_delta better than the best before them, every learned radius has moved less than
    radius_delta over those epochs and no gate has opened or closed in them. A loss that is not finite has
    diverged: never converged."""
    patience, n = criterion["patience"], len(epochs)
    losses = np.array([e["train_loss"] for e in epochs], dtype=float)
    if not np.isfinite(losses).all() or n < max(criterion["min_epochs"], patience + 1):
        return False
    monitor = criterion.get("monitor", "train_loss")  # records written before the choice existed watched the loss
    values = MONITORS[monitor] * np.array([e[monitor] for e in epochs], dtype=float)
    if values[-patience:].max() > values[:-patience].max() + criterion["min_delta"]:
        return False
    last = epochs[-patience - 1:]
    radii = [[v for k, v in e.get("learned", {}).items() if k.endswith(".radius")] for e in last]
    maps = [[v for k, v in e.get("learned", {}).items() if k.endswith(".open_maps")] for e in last]
    return ((not radii[0] or float(np.ptp(np.array(radii), axis=0).max()) < criterion["radius_delta"])
            and (not maps[0] or not np.ptp(np.array(maps), axis=0).any()))


# A run "at chance" has not left guessing: its final train accuracy is at most chance (1/classes) plus
# CHANCE_MARGIN, or at most what guessing reaches on the training split with probability CHANCE_LEVEL (binomial).
CHANCE_MARGIN, CHANCE_LEVEL = 0.02, 1e-3
OUTCOMES = ("converged", "capped", "chance")  # levelled off above chance; stopped at the epoch cap; at chance


def chance_ceiling(classes: int, train_size: int) -> float:
    """The highest train accuracy that is still chance: 1/classes plus CHANCE_MARGIN, or the accuracy a guess
    exceeds with probability CHANCE_LEVEL on train_size images (binomial), whichever is higher."""
    p = 1 / classes
    return max(p + CHANCE_MARGIN, float(stats.binom.isf(CHANCE_LEVEL, train_size, p)) / train_size)


def outcome(levelled: bool, train_accuracy: float, classes: int, train_size: int) -> str:
    """How a training run ended (OUTCOMES): a run whose last train accuracy has not left chance is 'chance', whether
    it levelled off (convbench.run.converged) or reached the cap; only a levelled run above chance is 'converged'.
    One rule for both frameworks and for records written before it (convbench.analysis.records)."""
    if train_accuracy <= chance_ceiling(classes, train_size):
        return "chance"
    return "converged" if levelled else "capped"


def load_data(cell: Cell) -> data.Dataset:
    """The data set of a train cell, at the cell's image size (the planted task's settings from the config)."""
    source = cell.settings["data"]
    planted = {k: source[k] for k in PLANTED_KEYS if k in source}
    return data.load(source["dataset"], source.get("root"), seed=cell.seed, test_fraction=source["test_fraction"],
                     train_fraction=cell.train_fraction, image_size=cell.image_size, planted=planted)


def data_fitted(epochs: list[dict], criterion: dict) -> bool:
    """Whether a learned network's first phase is over (convbench.learned): the data loss has fallen below
    half its first epoch's and the monitored quantity has levelled off (converged, radii aside). A net that
    sits at chance has a flat loss too: the fall keeps its penalties from starting on it."""
    return epochs[-1]["train_loss"] < 0.5 * epochs[0]["train_loss"] and converged(
        [{k: v for k, v in e.items() if k != "learned"} for e in epochs], criterion)


def train(cell: Cell, backend) -> dict:
    """Train on the configured data set until the train accuracy (or loss) levels off (settings.criterion; `epochs`
    is the cap); loss and accuracy on both splits after every epoch. A network that learns its kernel sizes or
    filter counts trains in two phases (convbench.learned): the weights alone until the data is fitted, then the
    radii and gates with their penalties until it levels off again; it is then shrunk to a plain one, checked
    and timed."""
    settings = cell.settings
    dataset = load_data(cell)
    trainer = backend.Trainer(cell.arch, init_weights(cell.arch, cell.seed), settings["lr"], settings["momentum"],
                              cell.device, cell.engine, seed=cell.seed, optimizer=settings["optimizer"],
                              learned_lr=settings.get("learned_lr"))
    is_learned = any(block.learned for block in cell.arch.blocks)
    criterion = settings.get("criterion") or {"max_epochs": settings["epochs"], "patience": settings["epochs"],
                                              "min_epochs": settings["epochs"], "min_delta": 0.0, "radius_delta": 1.0,
                                              "monitor": "train_loss"}
    epochs, done, started = [], False, None
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
        if not np.isfinite(train_loss):  # more epochs change nothing, and a NaN loss is no result
            raise FloatingPointError(f"training diverged: the train loss is {train_loss} after epoch {epoch} "
                                     f"(train.lr {settings['lr']:g}, {settings['optimizer']})")
        if is_learned and started is None:  # the second phase has yet to run
            if data_fitted(epochs, criterion):
                started = epoch
                trainer.start_learning(len(dataset.y_train))
        elif is_learned:
            done = converged(epochs[started:], {**criterion, "min_epochs": criterion["patience"] + 1})
        else:
            done = converged(epochs, criterion)
        if done:
            break
    ended = outcome(done, epochs[-1]["train_accuracy"], cell.arch.num_classes, len(dataset.y_train))
    result = {
        "counts": {"params_framework": trainer.num_params()},
        "training": {"epochs": epochs, "dataset": {"name": dataset.name, "train_size": len(dataset.y_train),
                                                    "test_size": len(dataset.y_test)},
                     "converged": ended == "converged", "outcome": ended, "stopped_epoch": len(epochs),
                     "chance_ceiling": chance_ceiling(cell.arch.num_classes, len(dataset.y_train)),
                     "criterion": criterion},
    }
    if is_learned:
        result["training"]["learning_started_epoch"] = started
        result["learned"] = shrink_and_measure(cell, backend, trainer, dataset)
    return result


TASKS = {"speed": measure_speed, "layers": measure_layers, "train": train}


def _counts(cell: Cell) -> dict:
    """FLOPs counted two ways: every tap of the padded kernel (dense), and only the taps inside the image (useful,
    what the roofline and the theoretical peak check). A layer cell's are its convolution's for the whole batch."""
    if cell.task == "layers":
        [conv] = cell.arch.convs()
        return {"flops_forward": conv_flops(conv, cell.image_size, cell.batch_size),
                "flops_forward_useful": conv_flops(conv, cell.image_size, cell.batch_size, useful=True)}
    return {**step_counts(cell.arch, cell.image_size, cell.batch_size),
            "bytes_step": step_bytes(cell.arch, cell.image_size, cell.batch_size)}


def run_cell(cell: Cell, backend, context: dict) -> dict:
    started, t0 = now(), time.perf_counter()
    counts, result, error = _counts(cell), {}, None
    try:
        result = TASKS[cell.task](cell, backend)
        counts.update(result.pop("counts", {}))
    except Exception:  # a failing cell is data, not the end of the run
        error = traceback.format_exc()
    try:
        environment = {**context["host"], **backend.environment(cell.device)}
    except Exception:
        environment = {**context["host"], "error": traceback.format_exc()}
    return cell_record(cell, counts, result, error, environment, started, context["process"], time.perf_counter() - t0)


def run_cells(cells: list[Cell], out_dir: Path, log=print, launch: int | None = None) -> list[dict]:
    """Run cells of one framework in this process; one record per cell in out_dir. launch: which of a group's
    launches this process is (convbench.launches), recorded with the process."""
    frameworks = {c.framework for c in cells}
    if len(frameworks) != 1 or len({c.threads for c in cells}) != 1:
        raise ValueError("run_cells takes cells of one framework and one thread count")
    t0 = time.perf_counter()
    allocator = timing.steady_allocator()
    backend = importlib.import_module(BACKENDS[frameworks.pop()])
    backend.configure(cells[0].threads, **cells[0].settings.get("cuda", {}))
    context = {"host": host_environment(), "process": {"import_s": time.perf_counter() - t0, "cells": len(cells),
                                                       "launch": launch, "allocator": allocator}}
    log(f"imported {backend.NAME} in {context['process']['import_s']:.1f} s")
    # the ceilings and the peak once per group: a merged record keeps its first launch's process (launches.merge)
    first = (launch or 1) == 1
    if first and any(c.task == "speed" for c in cells):
        try:
            ceilings = measure_ceilings(backend, cells[0].device, cells[0].settings, cells[0].threads)
            log(f"ceilings: {ceilings['gemm_flops']['median'] / 1e9:.1f} GFLOP/s fp32 GEMM, "
                f"{ceilings['memory_bandwidth']['median'] / 1e9:.1f} GB/s stream")
        except Exception:  # the cells are still worth running; the roofline will say what is missing
            ceilings = {"error": traceback.format_exc()}
        context["process"]["ceilings"] = ceilings
    elif first and any(c.task == "layers" for c in cells):  # no GEMM here; the roof check needs the peak alone
        model = backend.environment(cells[0].device).get("device_model") if cells[0].device == "cuda" else None
        context["process"]["ceilings"] = {"peak_flops": theoretical_peak(
            cells[0].device, cells[0].threads, model, cells[0].settings.get("cuda", {}).get("tf32", False))}
    records = []
    for i, cell in enumerate(cells, 1):
        record = run_cell(cell, backend, context)
        write_record(Path(out_dir) / f"{cell.id}.json", record)
        status = record["status"] if record["status"] == "ok" else record["error"].strip().splitlines()[-1]
        log(f"[{i}/{len(cells)}] {cell.id}: {status} ({record['wall_s']:.1f} s)")
        records.append(record)
    return records


def run_scaling(cells: list[Cell], out_dir: Path, log=print) -> None:
    """Run scaling cells of one framework and device count in their own launcher (convbench.parallel.launch):
    on one node torchrun with one process per device for PyTorch, one process with logical devices for
    TensorFlow; across nodes, srun starting one launcher per node. If the launcher itself dies, each cell it
    left without a record gets a failed one carrying the launcher's output."""
    from convbench.parallel import launch

    devices = {c.devices for c in cells}
    frameworks = {c.framework for c in cells}
    if len(devices) != 1 or len(frameworks) != 1:
        raise ValueError("run_scaling takes cells of one framework and one device count")
    out_dir = Path(out_dir)
    try:
        launcher = launch.command(frameworks.pop(), devices.pop(), launch.nodes_of(cells))
        with cells_file(cells, out_dir) as path:
            result = subprocess.run([*launcher, "--cells-json", path, "--out", str(out_dir)],
                                    capture_output=True, text=True)
        returncode, output = result.returncode, result.stdout + result.stderr
    except (OSError, RuntimeError, subprocess.CalledProcessError) as e:  # no Slurm allocation, no scontrol
        returncode, output = -1, f"{type(e).__name__}: {e}"
    log(output)
    if returncode == 0:
        return
    error = f"the launcher exited with status {returncode}:\n" + output[-4000:]
    for cell in cells:
        if not (out_dir / f"{cell.id}.json").exists():
            write_record(out_dir / f"{cell.id}.json", cell_record(cell, {}, {}, error, host_environment(), now()))


def scaling_launch(cells: list[Cell], out_dir: Path, launch: int, log=print) -> str:
    """One launch of a scaling group (convbench.launches): its launcher runs the cells this launch has no ok record
    of yet; returns the launcher's output."""
    todo = [c for c in cells if not finished(Path(out_dir) / f"{c.id}.json", c)]
    output = []
    if todo:
        run_scaling(todo, out_dir, log=output.append)
    return "\n".join(output) or "every cell already had an ok record in this launch"


def check_data(cells: list[Cell]) -> None:
    """Read each data set the train cells use once, before any cell runs: a missing or broken file is for
    the user to fix (a DataError naming it), not a failed record per cell."""
    sources = {(c.settings["data"]["dataset"], c.settings["data"].get("root")) for c in cells if c.task == "train"}
    for dataset, root in sorted(sources, key=str):
        if dataset in FILE_DATASETS:  # the others read no file
            data.load(dataset, root)


def launches(cells: list[Cell]) -> int:
    """How many independent launches a group's timed cells take (speed.launches, scaling.launches); one for other
    tasks."""
    return int(cells[0].settings.get("launches", 1)) if cells[0].task in TIMED else 1


def staging(out_dir: Path) -> Path:
    """Where a group's records wait until every cell has run: beside its folder, <out_dir>.partial."""
    return Path(out_dir).with_name(Path(out_dir).name + ".partial")


def run_group(cells: list[Cell], out_dir: Path, overwrite_ok: bool = False, log=print, launch: int | None = None) -> None:
    """Run one group's cells (one framework; one device count for scaling cells): run_groups, staged beside out_dir."""
    run_groups([(cells, Path(out_dir), staging(out_dir))], overwrite_ok, log, launch)


def run_groups(groups: list[tuple[list[Cell], Path, Path]], overwrite_ok: bool = False, log=print,
               launch: int | None = None) -> None:
    """Run groups' cells (cells, out_dir, stage: one framework each; one device count for scaling cells), resumably.

    Records are written to the group's staging folder first and copied into out_dir once every group's cells have run;
    then the staging folders go. A run killed half way leaves its finished records there, and Snakemake, which empties
    a job's output folder before running it again, does not touch them (a stage lies outside that folder): the rerun
    skips every cell whose ok record of the same parameters is staged (or already in out_dir), and runs the rest.
    overwrite_ok runs every cell again and lets a failed record replace an ok one (records.publish).
    Timed cells run in launches (speed.launches, scaling.launches; convbench.launches), each staged in
    <stage>/launch-<i>/ and resumable alike. The speed and layer groups of a job take turns (launch 1 of each, then
    launch 2 of each, ...) and each launch is a process of its own, so that two frameworks never share one, even with
    a single launch. `launch` marks a process that is one of them: it runs its cells itself.
    A second run on the same folders is refused while this one holds them (files.claimed), and a folder that cannot
    be written is named before any cell runs."""
    with claimed(stage for _, _, stage in groups):
        for _, out_dir, _ in groups:
            check_writable(out_dir)
        _run_groups(groups, overwrite_ok, log, launch)


def _run_groups(groups: list[tuple[list[Cell], Path, Path]], overwrite_ok: bool, log, launch: int | None) -> None:
    pending = [(_todo(cells, Path(out_dir), Path(stage), overwrite_ok, log), Path(stage))
               for cells, out_dir, stage in groups]
    frameworks = {cells[0].framework for cells, _, _ in groups if cells}
    timed = [i for i, (todo, _) in enumerate(pending) if todo and todo[0].task in ("speed", "layers")
             and launch is None and (launches(todo) > 1 or len(frameworks) > 1)]
    run_launches([(*pending[i], launches(pending[i][0])) for i in timed], overwrite_ok, log=log)
    for i, (todo, stage) in enumerate(pending):
        if not todo or i in timed:
            continue
        if todo[0].task == "scaling" and launches(todo) > 1:
            run_launches([(todo, stage, launches(todo))], overwrite_ok, log=log, launch_one=scaling_launch)
        elif todo[0].task == "scaling":
            run_scaling(todo, stage, log=log)
        else:
            run_cells(todo, stage, log=log, launch=launch)
    for cells, out_dir, stage in groups:
        for cell in cells:
            if (Path(stage) / f"{cell.id}.json").exists():
                note = publish(Path(stage) / f"{cell.id}.json", Path(out_dir), overwrite_ok)
                if note:
                    log(note)
    for stage in {Path(stage) for _, _, stage in groups}:  # after every group's: groups may share one folder
        shutil.rmtree(stage, ignore_errors=True)


def _todo(cells: list[Cell], out_dir: Path, stage: Path, overwrite_ok: bool, log) -> list[Cell]:
    """The cells still to run: those without an ok record of the same parameters staged or in out_dir (all of them
    with overwrite_ok). A staged record stays only to be used: not a stale one."""
    todo = []
    for cell in cells:
        done = next((d for d in (stage, out_dir) if finished(d / f"{cell.id}.json", cell)), None)
        if done and not overwrite_ok:
            log(f"{cell.id}: not run again, an ok record of it is in {done} (--overwrite-ok runs it)")
        else:
            todo.append(cell)
        if done != stage or overwrite_ok:
            (stage / f"{cell.id}.json").unlink(missing_ok=True)
    return todo

"""Scaling cells: convbench.cells.Cell with task "scaling" and the settings the workers read.

Framework-free, so that a config can be expanded and a record named without importing either.
Settings: scaling "strong" (batch_size is the global batch) or "weak" (batch_size per device,
global batch = batch_size x devices); straggler_ms (the last device sleeps this long at the start
of every step); the timing protocol (convbench.timing.Protocol's fields); lr, momentum.
"""
from convbench.cells import Cell
from convbench.spec import ArchSpec

DEFAULT_SETTINGS = {"scaling": "strong", "straggler_ms": 0.0, "nodes": 1, "warmup": 2, "min_repeats": 5,
                    "max_repeats": 20, "max_seconds": 2.0, "max_iqr_ratio": 0.10, "lr": 0.05, "momentum": 0.9,
                    "launches": 1}
# TensorFlow's replicas run as one tf.function program; eagerly, MirroredStrategy runs them in Python threads.
DEFAULT_ENGINE = {"torch": "eager", "tensorflow": "function"}


def scaling_cell(arch: ArchSpec, framework: str = "torch", devices: int = 1, parallelism: str = "data",
                 batch_size: int = 64, image_size: int = 16, threads: int = 2, seed: int = 0, study: str = "scaling",
                 device: str = "cpu", engine: str | None = None, **settings) -> Cell:
    """A cell of task "scaling" with the default settings, any of them overridden by keyword.
    threads: the whole job's (each of T torch processes uses threads // T)."""
    unknown = set(settings) - set(DEFAULT_SETTINGS)
    if unknown:
        raise ValueError(f"unknown scaling settings {sorted(unknown)} (known: {', '.join(DEFAULT_SETTINGS)})")
    return Cell(study=study, task="scaling", framework=framework, engine=engine or DEFAULT_ENGINE[framework],
                arch=arch, batch_size=batch_size, image_size=image_size, seed=seed, threads=threads, device=device,
                devices=devices, parallelism=parallelism, settings={**DEFAULT_SETTINGS, **settings})


def global_batch(cell: Cell) -> int:
    scaling = cell.settings.get("scaling")
    if scaling not in ("strong", "weak"):
        raise ValueError(f"settings.scaling must be 'strong' or 'weak', got {scaling!r}")
    return cell.batch_size if scaling == "strong" else cell.batch_size * cell.devices


def hybrid_error() -> NotImplementedError:
    return NotImplementedError(
        "hybrid parallelism (data-parallel convolutions, model-parallel classifier) is not built: in these specs "
        "the classifier holds features x classes weights (640 for 64 maps and 10 classes, about 3% of the k3 "
        "network's parameters), so splitting it saves next to nothing; the trick pays off for wide fully "
        "connected layers")

"""Result records as plain data: the one reader every study goes through.

A record is one JSON file per cell (convbench.records writes them). Reading it checks what the analysis relies on and
names the file when something is missing, so a bad record stops the analysis with one line, not a traceback.
As torch.utils.benchmark's Measurement: small frozen dataclasses, no behaviour beyond what reading needs.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import yaml

from convbench.launches import merge_baselines
from convbench.run import outcome
from convbench.spec import ArchSpec

STATUSES = ("ok", "failed")
CELL_REQUIRED = ("study", "task", "framework", "engine", "device", "devices", "batch_size", "seed", "arch")
LAYER_TASK = "layers"  # layer-wise cells: one convolution and its activation, timed phase by phase


class RecordError(ValueError):
    """A result record is unreadable or incomplete; the message names the file."""


@dataclass(frozen=True)
class Summary:
    """One timed quantity over its repeats: the median, its spread and every raw sample (seconds)."""
    median: float
    iqr: float | None = None
    cv: float | None = None
    n: int | None = None
    noisy: bool | None = None
    best: float | None = None
    samples: tuple[float, ...] = ()
    launch_cv: float | None = None  # several launches: the between-launch CV of their medians

    @classmethod
    def read(cls, d) -> Summary | None:
        if not isinstance(d, dict) or d.get("median") is None:
            return None
        return cls(d["median"], d.get("iqr"), d.get("cv"), d.get("n"), d.get("noisy"), d.get("best"),
                   tuple(float(x) for x in d.get("samples") or ()), d.get("launch_cv"))


@dataclass(frozen=True)
class Cell:
    """What was run: the cell as the config made it (convbench.cells.Cell, as written into the record)."""
    study: str
    task: str
    framework: str
    engine: str
    device: str
    devices: int
    batch_size: int
    seed: int
    arch: dict
    parallelism: str = "none"
    image_size: int | None = None
    train_fraction: float = 1.0
    threads: int | None = None
    settings: dict = field(default_factory=dict)

    @property
    def setup(self) -> str:
        return f"{self.framework}-{self.engine}"

    @property
    def blocks(self) -> list[dict]:
        return self.arch["blocks"]

    @property
    def spec(self) -> ArchSpec:
        return ArchSpec.from_record(self.arch)


@dataclass(frozen=True)
class Launch:
    """One process launch of a timed cell: its phases and whole step, summarised within the launch."""
    launch: int
    phases: dict[str, Summary]
    step: Summary | None = None
    started: str | None = None  # when the launch's run of this cell began (ISO 8601, UTC)


@dataclass(frozen=True)
class Timings:
    """The timed phases of a step (forward, backward, optimizer, ...), the whole step, and what a study adds."""
    phases: dict[str, Summary]
    step: Summary | None = None
    first_step: float | None = None
    phase_method: str | None = None
    communication: Summary | None = None  # several devices: the collectives replayed alone
    baseline: dict | None = None  # several devices: the same step without communication (raw)
    exposed_communication: float | None = None
    phase_overhead: float | None = None  # the synchronised phases' sum over the blocked whole step
    launches: tuple[Launch, ...] = ()  # several launches (convbench.launches): each one's own phases and step


@dataclass(frozen=True)
class Record:
    path: Path
    cell_id: str
    status: str
    cell: Cell
    error: str | None = None
    timings: Timings | None = None
    epochs: tuple[dict, ...] = ()  # train cells: one dict per epoch (accuracy, loss, seconds, learned state)
    dataset: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)  # params, FLOPs and bytes in closed form
    environment: dict = field(default_factory=dict)
    engine: dict = field(default_factory=dict)  # how the engine ran it: optimizer, precision, compile time, warnings
    process: dict = field(default_factory=dict)  # import time and the device ceilings measured in the process
    memory: dict = field(default_factory=dict)
    learned: dict = field(default_factory=dict)  # learned study: what crop and prune kept
    convergence: dict = field(default_factory=dict)  # train cells: converged, outcome, stopped_epoch, criterion,
                                                     # learning_started_epoch (if recorded)
    communication: dict = field(default_factory=dict)  # several devices: bytes measured and modelled
    wall_s: float | None = None
    started: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


# Values: the record schema, where a number is a finite one (a NaN time would make a framework "faster").
_FINITE = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
    "number", lambda _, v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))
_VALUES = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=_FINITE)(
    yaml.safe_load((Path(__file__).resolve().parents[3] / "workflow/schemas/record.schema.yaml").read_text()))


def _problem(raw) -> str | None:
    """What a record lacks, or None when it has what the analysis reads."""
    if not isinstance(raw, dict):
        return "top level is not an object"
    absent = [k for k in ("schema_version", "cell_id", "cell", "status") if k not in raw]
    if absent:
        return f"missing key(s) {absent}"
    if not isinstance(raw["cell"], dict):
        return "'cell' is not an object"
    absent = [k for k in CELL_REQUIRED if k not in raw["cell"]]
    if absent:
        return f"missing cell key(s) {absent}"
    arch = raw["cell"]["arch"]
    if not isinstance(arch, dict) or "name" not in arch or not arch.get("blocks"):
        return "cell.arch needs a name and at least one block"
    error = jsonschema.exceptions.best_match(_VALUES.iter_errors(raw))
    if error is not None:
        field = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        return f"{field}: {error.message}"
    if raw["status"] not in STATUSES:
        return f"status {raw['status']!r} is not one of {STATUSES}"
    if raw["status"] == "ok":
        if "timings" not in raw and "training" not in raw:
            return "an ok record needs 'timings' or 'training'"
        if "training" in raw and not raw["training"].get("epochs"):
            return "'training' has no epochs"
        if "timings" in raw and "phases" not in raw["timings"]:
            return "'timings' has no phases"
    return None


def _timings(raw) -> Timings | None:
    if not isinstance(raw, dict):
        return None
    phases = _summaries(raw["phases"])
    launches = tuple(Launch(int(x["launch"]), _summaries(x.get("phases") or {}), Summary.read(x.get("step")),
                            x.get("started")) for x in raw.get("launches") or ())
    baseline = raw.get("baseline")
    if baseline and len(raw.get("launches") or ()) > 1 and all(x.get("baseline") for x in raw["launches"]):
        baseline = merge_baselines(raw["launches"])  # over every launch, as the step (older records kept the first's)
    return Timings(phases, Summary.read(raw.get("step")), raw.get("first_step"), raw.get("phase_method"),
                   Summary.read(raw.get("communication")), baseline, raw.get("exposed_communication"),
                   raw.get("phase_overhead"), launches)


def _summaries(raw: dict) -> dict[str, Summary]:
    return {name: s for name, s in ((k, Summary.read(v)) for k, v in raw.items()) if s is not None}


def _convergence(training: dict, arch: dict) -> dict:
    """converged, outcome (convbench.run.OUTCOMES), stopped_epoch and criterion as recorded. A record written before
    the outcome existed gets it by the same rule (convbench.run.outcome): its 'converged' meant levelled off, at
    chance or not."""
    found = {k: training[k] for k in ("converged", "outcome", "stopped_epoch", "criterion", "learning_started_epoch")
             if k in training}
    dataset, epochs = training.get("dataset"), training.get("epochs") or [{}]
    size, last = dataset.get("train_size") if isinstance(dataset, dict) else None, epochs[-1].get("train_accuracy")
    if "outcome" not in found and "converged" in found and isinstance(size, int) and size > 0 and last is not None:
        found["outcome"] = outcome(bool(found["converged"]), last, arch.get("num_classes", 10), size)
        found["converged"] = found["outcome"] == "converged"
    return found


def planned_dataset(cell: Cell) -> dict:
    """A train cell's data set as its settings name it, for a record without training (a failed cell): its sizes are
    what the run would have drawn, unknown here."""
    name = (cell.settings.get("data") or {}).get("dataset") if cell.task == "train" else None
    return {"name": name} if name else {}

def parse(raw: dict, path: Path | str = "<record>") -> Record:
    """One record from its JSON object; RecordError naming `path` when it lacks what the analysis reads."""
    problem = _problem(raw)
    if problem:
        raise RecordError(f"{path}: invalid result record: {problem}")
    c = raw["cell"]
    cell = Cell(c["study"], c["task"], c["framework"], c["engine"], c["device"], c["devices"], c["batch_size"],
                c["seed"], c["arch"], c.get("parallelism", "none"), c.get("image_size"),
                float(c.get("train_fraction", 1.0)), c.get("threads"), c.get("settings") or {})
    training = raw.get("training") or {}
    ok = raw["status"] == "ok"
    return Record(Path(path), raw["cell_id"], raw["status"], cell, raw.get("error"),
                  _timings(raw.get("timings")) if ok else None, tuple(training.get("epochs") or ()) if ok else (),
                  training.get("dataset") or planned_dataset(cell), raw.get("counts") or {}, raw.get("environment") or {},
                  raw.get("engine") or {}, raw.get("process") or {}, raw.get("memory") or {},
                  raw.get("learned") or {}, _convergence(training, c["arch"]) if ok else {},
                  raw.get("communication") or {}, raw.get("wall_s"), raw.get("started"))


def record_paths(source) -> list[Path]:
    """A directory (searched recursively for *.json), a file, or an iterable of directories and files. A job's
    staging folder (<group>.partial, left by an interrupted run until its rerun) holds copies: it is not read."""
    sources = [source] if isinstance(source, (str, Path)) else source
    paths = []
    for item in map(Path, sources):
        if not item.exists():
            raise RecordError(f"{item}: no such records directory or file")
        paths += _json_files(item) if item.is_dir() else [item]
    return paths


def _json_files(folder: Path) -> list[Path]:
    """*.json under folder, following symbolic links to folders (a records folder assembled from links is read whole;
    two links to one folder read it twice, and the duplicate cells are refused by name); staging folders (*.partial)
    left out, and a link back up its own path not followed again."""
    found = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        above = [Path(root), *Path(root).parents][1:len(Path(root).relative_to(folder).parts) + 1]
        if os.path.realpath(root) in {os.path.realpath(p) for p in above}:
            dirs[:] = []
            continue
        dirs[:] = [d for d in dirs if not d.endswith(".partial")]
        found += [Path(root) / f for f in files if f.endswith(".json")]
    return sorted(found)


def load_records(source) -> list[Record]:
    """Every record under `source`, in path order; RecordError naming the file at the first bad one."""
    paths = record_paths(source)
    if not paths:
        names = [source] if isinstance(source, (str, Path)) else list(source)
        raise RecordError(f"{' '.join(map(str, names))}: no result records (*.json) found")
    records, seen, cells = [], {}, {}
    for path in paths:
        try:
            raw = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RecordError(f"{path}: not a readable JSON record: {e}") from None
        record = parse(raw, path)
        if record.cell_id in seen:
            raise RecordError(f"{path}: cell_id {record.cell_id!r} already read from {seen[record.cell_id]}")
        cell = json.dumps(raw["cell"], sort_keys=True)  # one cell under two ids would be counted twice
        if cell in cells:
            raise RecordError(f"{path}: the cell of {cells[cell]} under another cell_id ({record.cell_id!r}); "
                              f"keep one of the two files")
        seen[record.cell_id], cells[cell] = path, path
        records.append(record)
    return records

"""Load and check a run configuration: the JSON Schema first, then what a schema cannot say."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import jsonschema
import yaml

from convbench import cells
from convbench.spec import SpecError

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The config is malformed; the message names the file and the field."""


class _StrictLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys in a mapping silently (two architectures named k5: one
    is lost); YAML itself forbids them, and so does this loader."""

    def construct_mapping(self, node, deep=False):
        seen = []
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen and key_node.tag != "tag:yaml.org,2002:merge":
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.append(key)
        return super().construct_mapping(node, deep)


def read(path: str | Path) -> dict:
    """The settings of one config file; a YAML error in one line that names the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        config = yaml.load(path.read_text(), Loader=_StrictLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: must be a mapping of settings")
    return config


# JSON Schema counts 2.0 as an integer; Python does not (set_num_threads(2.0) raises, "b64.0" names a cell). And a
# number is a finite one: YAML's .nan and .inf pass every minimum and maximum (lr: .nan trains to nothing).
_TYPES = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine_many({
    "integer": lambda _, value: isinstance(value, int) and not isinstance(value, bool),
    "number": lambda _, value: isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)})
_Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=_TYPES)


def check(config: dict, source: str = "config") -> list[cells.Cell]:
    """Validate `config` against the schema and expand it; returns its cells."""
    schema = yaml.safe_load(SCHEMA.read_text())
    error = jsonschema.exceptions.best_match(_Validator(schema).iter_errors(config))
    if error is not None:
        field = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        # a pattern is no message: say what it stands for (the field's description)
        message = f"{error.instance!r} is not allowed: {error.schema['description']}" \
            if error.validator == "pattern" and "description" in error.schema else error.message
        raise ConfigError(f"{source}: {field}: {message}")
    for where, data in [("data", config["data"])] + [(f"studies.{n}.data", {**config["data"], **s["data"]})
                                                     for n, s in config["studies"].items() if "data" in s]:
        if data["dataset"] in cells.FILE_DATASETS:
            if not data.get("root"):
                raise ConfigError(f"{source}: {where}.root: must name the directory holding {data['dataset']}")
            if not Path(data["root"]).is_dir():
                raise ConfigError(f"{source}: {where}.root: {data['root']} does not exist")
    check_projection(config.get("projection"), source)
    try:
        return cells.expand(config)
    except SpecError as e:
        raise ConfigError(f"{source}: {e}") from None


def check_projection(projection: dict | None, source: str = "config") -> None:
    """The projection's intra- and inter-node links must be among its links."""
    for key in ("intra", "inter"):
        if projection and projection[key] not in projection["links"]:
            raise ConfigError(f"{source}: projection.{key}: {projection[key]!r} is not one of projection.links "
                              f"({', '.join(projection['links'])})")


def projection_section(text: str | None, path: str | None = None) -> dict | None:
    """The projection section for the analysis: given as JSON (--projection, from the Snakemake rule), or read
    from a config file (--config); checked against the schema. None where neither is given or it has none."""
    if text is None and path is None:
        return None
    if text is not None:
        try:
            projection = json.loads(text) or None
        except json.JSONDecodeError as e:
            raise ConfigError(f"--projection: not valid JSON: {e}") from None
        source = "--projection"
    else:
        projection, source = read(path).get("projection"), str(path)
    if projection is None:
        return None
    _check_section("projection", projection, source)
    check_projection(projection, source)
    return projection


def margins_section(text: str | None, path: str | None = None) -> dict:
    """The practical margins for the analysis's verdicts: given as JSON (--margins, from the Snakemake rule), or read
    from a config file (--config); checked against the schema. {} (the defaults) where neither gives any."""
    if text is not None:
        try:
            margins, source = json.loads(text) or {}, "--margins"
        except json.JSONDecodeError as e:
            raise ConfigError(f"--margins: not valid JSON: {e}") from None
    else:
        margins, source = (read(path).get("margins") or {}) if path else {}, str(path)
    _check_section("margins", margins, source)
    return margins


def _check_section(name: str, value, source: str) -> None:
    """One top-level section given on its own (--projection, --margins) against its part of the config schema."""
    schema = yaml.safe_load(SCHEMA.read_text())
    error = jsonschema.exceptions.best_match(
        _Validator({**schema["properties"][name], "$defs": schema["$defs"]}).iter_errors(value))
    if error is not None:
        field = ".".join([name, *(str(p) for p in error.absolute_path)])
        raise ConfigError(f"{source}: {field}: {error.message}")


def load(path: str | Path) -> tuple[dict, list[cells.Cell]]:
    config = read(path)
    return config, check(config, str(path))


def cores() -> int:
    """The cores this process may use (a Slurm job or taskset may hold fewer than the machine has)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def gpus() -> int:
    """NVIDIA GPUs this process may use, asked of nvidia-smi rather than a framework: the Snakefile calls
    this at every parse, where importing torch would cost seconds."""
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return 0
    found = sum(line.startswith("GPU ") for line in listed.splitlines())
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return found if visible is None else min(found, len([d for d in visible.split(",") if d.strip()]))


def check_hardware(found: list[cells.Cell], source: str = "config") -> None:
    """Refuse cells this machine cannot run, before any of them runs: they would fail at run time or,
    worse, time 64 "devices" crammed onto 2 cores and record it as ok. On the CPU a device is a process
    (PyTorch) or a logical device (TensorFlow) with at least one core of its own; the job's `threads`
    are shared out among them."""
    if not found:
        return
    threads = max(c.threads for c in found)
    if threads > cores():
        raise ConfigError(f"{source}: threads: {threads} threads, but this machine gives this process {cores()} cores")
    for kind in ("cpu", "cuda"):
        # A job over several nodes (scaling.nodes) needs devices / nodes on each; nodes are taken to be like this one.
        cell = max((c for c in found if c.device == kind), key=lambda c: c.devices // c.settings.get("nodes", 1),
                   default=None)
        if cell is None:
            continue
        nodes = cell.settings.get("nodes", 1)
        asked = cell.devices // nodes
        field = f"scaling.devices: {cell.devices} devices over {nodes} nodes (scaling.nodes) are {asked} per node: " \
            if nodes > 1 else "scaling.devices: "
        if kind == "cpu" and asked > cores():
            raise ConfigError(f"{source}: {field}{asked} CPU devices need a core each, "
                              f"but this machine gives this process {cores()} cores")
        visible = gpus() if kind == "cuda" else 0
        if kind == "cuda" and not visible:
            raise ConfigError(f"{source}: device: cuda, but nvidia-smi finds no NVIDIA GPU on this machine")
        if kind == "cuda" and asked > visible:
            raise ConfigError(f"{source}: {field}{asked} GPUs asked for, {visible} visible here")


@contextmanager
def one_line_errors():
    """In the Snakefile: a config error as one line on stderr and exit status 2, as from the command line,
    instead of Snakemake's traceback (or, from its own validate(), the whole schema and config)."""
    try:
        yield
    except ConfigError as e:
        print(f"convbench: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None

"""Load and check a run configuration: the JSON Schema first, then what a schema cannot say."""
from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml

from convbench import cells
from convbench.spec import SpecError

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The config is malformed; the message names the file and the field."""


def check(config: dict, source: str = "config") -> list[cells.Cell]:
    """Validate `config` against the schema and expand it; returns its cells."""
    schema = yaml.safe_load(SCHEMA.read_text())
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(config))
    if error is not None:
        field = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ConfigError(f"{source}: {field}: {error.message}")
    data = config["data"]
    if data["dataset"] != "digits":
        if not data["root"]:
            raise ConfigError(f"{source}: data.root: must name the directory holding {data['dataset']}")
        if not Path(data["root"]).is_dir():
            raise ConfigError(f"{source}: data.root: {data['root']} does not exist")
    try:
        return cells.expand(config)
    except SpecError as e:
        raise ConfigError(f"{source}: {e}") from None


def load(path: str | Path) -> tuple[dict, list[cells.Cell]]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: must be a mapping of settings")
    return config, check(config, str(path))

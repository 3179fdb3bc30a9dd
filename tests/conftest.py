import numpy as np
import pytest

from convbench.spec import ArchSpec


@pytest.fixture(scope="session")
def torch_backend():
    from convbench.backends import torch_backend

    torch_backend.configure(2)
    return torch_backend


@pytest.fixture(scope="session")
def tf_backend():
    from convbench.backends import tf_backend

    tf_backend.configure(2)
    return tf_backend


def make_spec(*blocks, in_channels=3, num_classes=10, name="test") -> ArchSpec:
    return ArchSpec.from_dict(name, {"blocks": list(blocks)}, in_channels, num_classes)


def batch(n=4, channels=3, size=12, classes=10, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, channels, size, size)).astype(np.float32), rng.integers(0, classes, n)


def tiny_pipeline(work, **changes):
    """A copy of the workflow in `work` with a tiny config (two kernel sizes, a maxout speed cell, one epoch,
    three repeats), `changes` applied on top; returns the config. Snakemake runs there like in the repo."""
    import shutil
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    for name in ("Snakefile", "workflow", "paper", "profiles", "envs"):
        (shutil.copytree if (root / name).is_dir() else shutil.copy)(root / name, work / name)
    config = yaml.safe_load((root / "config/config.yaml").read_text())
    config.update(run="tiny", architectures={k: config["architectures"][k] for k in ("k3", "k5", "maxout2-eqparams")},
                  studies={"kernel": {"architectures": ["k3", "k5"], "tasks": ["train", "speed"]},
                           "activation": {"architectures": ["maxout2-eqparams"], "tasks": ["speed"]}})
    config["train"].update(epochs=1, seeds=[0])
    config["data"].update(train_size=256, test_size=128)  # the planted task, drawn small
    config["speed"].update(batch_size=16, warmup=1, min_repeats=3, max_repeats=3, min_seconds=0, launches=2)
    config.update(changes)
    (work / "config").mkdir()
    (work / "config/config.yaml").write_text(yaml.safe_dump(config))
    return config


def new_record(cell, cell_id: str | None = None, /, **parts) -> dict:
    """Every test's record: the envelope convbench.records.cell_record writes (schema version, id, cell, counts,
    status ok, no error) around `parts`, which add what a test needs (timings, training, process, environment...) or
    replace a field of the envelope. cell: a convbench.cells.Cell (its id, and its dict as JSON holds it), or a
    cell's dict with its cell_id."""
    import json

    from convbench.records import SCHEMA_VERSION

    if not isinstance(cell, dict):
        cell_id, cell = cell.id, json.loads(json.dumps(cell.to_dict()))
    return {"schema_version": SCHEMA_VERSION, "cell_id": cell_id, "cell": cell, "counts": {}, "status": "ok",
            "error": None, **parts}

"""Records of the activation study for its tests (tests/test_analysis_activation.py) and the tests built on them."""
import json
import zlib
from pathlib import Path

import numpy as np
from conftest import new_record

from builders import run as base
from convbench import spec
from convbench.analysis import read_run, write_tidy
from convbench.analysis.activation.verdicts import verdicts

SECTION = Path(__file__).resolve().parents[2] / "paper" / "sections"
T_2 = 4.302652729911275  # t quantile 0.975 at 2 degrees of freedom, from a printed table
T_4 = 2.7764451051977987  # ... at 4 degrees of freedom
SEEDS = (0, 1, 2, 3, 4)
FRAMEWORKS = ("torch", "tensorflow")
# First block's (filters, pieces); the second block has twice the filters. Names say nothing the analysis reads.
ARCHS = {"relu": (48, 1), "maxout2-eqparams": (48, 2), "maxout2-eqwidth": (96, 2)}
# Per arch and training fraction: test accuracy and train/test gap of seeds 0-4.
TEST = {"relu": [0.95, 0.96, 0.97, 0.955, 0.965], "maxout2-eqparams": [0.89, 0.902, 0.908, 0.897, 0.905],
        "maxout2-eqwidth": [0.94, 0.97, 0.99, 0.95, 0.96]}
GAP = {"relu": {1.0: [0.01, 0.02, 0.03, 0.02, 0.01], 0.25: [0.06, 0.08, 0.08, 0.07, 0.06],
                0.1: [0.08, 0.10, 0.09, 0.09, 0.08]},
       "maxout2-eqparams": {1.0: [0.01, 0.02, 0.03, 0.02, 0.01], 0.25: [0.10, 0.12, 0.14, 0.12, 0.13],
                            0.1: [0.21, 0.23, 0.25, 0.22, 0.24]},
       "maxout2-eqwidth": {1.0: [0.02] * 5, 0.25: [0.05, 0.07, 0.09, 0.07, 0.06], 0.1: [0.07, 0.10, 0.13, 0.09, 0.08]}}
# Median forward and backward time, s; maxout at equal filters is slower backward, at equal width faster forward.
TIMES = {"relu": (0.010, 0.020), "maxout2-eqparams": (0.010, 0.040), "maxout2-eqwidth": (0.005, 0.020)}
SAVED = {"relu": 1_000_000, "maxout2-eqparams": 600_000, "maxout2-eqwidth": 2_000_000}


def arch_dict(name, in_channels, archs=ARCHS):
    width, pieces = archs[name]
    return {"name": name, "in_channels": in_channels, "num_classes": 10,
            "blocks": [{"width": width * m, "kernel": 3, "depth": 1, "activation": "maxout" if pieces > 1 else "relu",
                        "pieces": pieces, "pool": 2} for m in (1, 2)]}


def summary(median, rng, n=30):
    samples = list(median * (1 + 0.04 * rng.standard_normal(n)))
    q1, q3 = np.percentile(samples, [25, 75])
    return {"median": float(np.median(samples)), "iqr": float(q3 - q1), "cv": float(np.std(samples) / np.mean(samples)),
            "n": n, "samples": samples}


def record(task, framework, name, seed=0, fraction=1.0, archs=ARCHS, role=None):
    """A record of the study's (train or speed) cell, without measurements."""
    image_size, in_channels = (16, 3) if task == "speed" else (8, 1)
    suffix = "" if fraction == 1 else f"_f{fraction:g}"
    cell_id = f"activation_{name}_{framework}-eager_cpu1-none_b64_s{seed}{suffix}_{task}"
    archd = arch_dict(name, in_channels, archs)
    s = spec.ArchSpec.from_dict(name, archd, in_channels, 10)
    cell = {"study": "activation", "task": task, "framework": framework, "engine": "eager", "device": "cpu",
            "devices": 1, "parallelism": "none", "batch_size": 64, "image_size": image_size, "seed": seed,
            "train_fraction": fraction, "arch": archd,
            "settings": {"max_iqr_ratio": 0.1, **({"role": role} if role else {})}}
    return new_record(cell, cell_id,
                      counts={"params": spec.param_count(s), "flops_forward": spec.forward_flops(s, image_size)},
                      environment={"python": "3.11.7", "versions": {framework: "1.0"}}, process={"import_s": 4.0},
                      started="2026-11-28T23:59:00+00:00")


def train_record(framework, name, seed, fraction, test, gap, loss=0.1, archs=ARCHS, role=None, converged=None):
    r = record("train", framework, name, seed, fraction, archs, role)
    final = {"epoch": 3, "train_loss": loss, "train_accuracy": min(test + gap, 1.0),  # no record holds more than all
             "test_loss": 0.2, "test_accuracy": test, "seconds": 1.5}
    r["training"] = {"epochs": [final], "dataset": {"name": "digits", "train_size": round(1347 * fraction),
                                                    "test_size": 450}}
    if converged is not None:
        r["training"] |= {"converged": converged, "stopped_epoch": 3, "criterion": {"patience": 2, "max_epochs": 3}}
    return r


def speed_record(framework, name, forward, backward, saved, archs=ARCHS):
    r = record("speed", framework, name, archs=archs)
    rng = np.random.default_rng(zlib.crc32(r["cell_id"].encode()))
    r["timings"] = {"phases": {"forward": summary(forward, rng), "backward": summary(backward, rng),
                               "optimizer": summary(0.002, rng)}}
    r["memory"] = {"saved_for_backward_bytes": saved if framework == "torch" else None, "peak_bytes": None}
    return r


def study(test=TEST, gap=GAP, times=TIMES, seeds=SEEDS, fractions=(0.1, 0.25, 1.0), archs=ARCHS, loss=None,
          unconverged=()):
    """Records of the whole study: seeds in PyTorch (replicates), the first seed again in TensorFlow (the repeat),
    speed cells in both; archs maps the fixture's names to (filters, pieces); unconverged: (arch, seed, fraction) of
    replicates that hit the epoch cap."""
    records = []
    for framework in FRAMEWORKS:
        for name in archs:
            key = name if name in TEST else list(TEST)[list(archs).index(name)]  # renamed archs keep their data
            for fraction in fractions:
                for seed in seeds if framework == FRAMEWORKS[0] else seeds[:1]:
                    role = "replicate" if framework == FRAMEWORKS[0] else "repeat"
                    records.append(train_record(framework, name, seed, fraction, test[key][seed] - (1 - fraction) / 2,
                                                gap[key][fraction][seed], (loss or {}).get((key, seed), 0.1), archs,
                                                role, (key, seed, fraction) not in unconverged))
            records.append(speed_record(framework, name, *times[key], SAVED[key], archs))
    return records


def published(records, tmp_path):
    """The run as a study sees it: records written, read into tidy.csv and back."""
    root = tmp_path / f"run{len(list(tmp_path.glob('run*')))}"
    for r in records:
        path = root / "records" / f"{r['cell_id']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r))
    return read_run(write_tidy(root / "records", root / "generated"))


def found(run, unit="torch-eager"):
    """The verdicts of a unit by (arch, key suffix)."""
    return {(v.subject, v.key.rsplit("/", 1)[1]): v for v in verdicts(run) if v.key.split("/")[1] == unit}


# ---- for tests/test_paper.py: more seeds beside tests/test_analysis.py's run ------------------------------------

OFFSETS = [0.0, 0.002, -0.002]  # seed 0 keeps base's accuracy


def more_seeds(records_dir):
    """Seeds 1 and 2 on the whole training split and seeds 0-2 on a quarter of it, beside test_analysis.write_run's
    activation cells (seed 0, whole split): maxout2-eqwidth beats ReLU with intervals apart, maxout2-eqparams overlaps
    it."""
    archs = {name: (base.ARCHS[name][0][0], base.ARCHS[name][0][3]) for name in base.STUDIES["activation"]}
    written = []
    for framework in base.FRAMEWORKS:
        for name in archs:
            for fraction, seeds in [(1.0, (1, 2)), (0.25, (0, 1, 2))]:
                for seed in seeds:
                    test = base.ACCURACY[name] + OFFSETS[seed] - (1 - fraction) / 10
                    r = train_record(framework, name, seed, fraction, test, 0.02 + (1 - fraction) / 10 + OFFSETS[seed],
                                     archs=archs)
                    path = records_dir / "train" / framework / f"{r['cell_id']}.json"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(json.dumps(r, indent=1))
                    written.append(r)
    return written

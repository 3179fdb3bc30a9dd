"""Records of the kernel study for its tests (tests/test_analysis_kernel.py) and the tests built on them."""
import json
import zlib

import numpy as np
from conftest import new_record

from convbench import spec
from convbench.analysis import read_run, write_tidy
from convbench.analysis.kernel import values

ARCHS = {"k3": (3, 1), "k5": (5, 1), "k7": (7, 1), "k3-stack2": (3, 2), "k3-stack3": (3, 3)}  # (kernel, depth)
PAIRS = {("k5", "k3-stack2"), ("k7", "k3-stack3")}
# Test accuracy per arch; train accuracy is this plus a gap that grows with the parameters.
ACCURACY = {"k3": 0.951, "k5": 0.962, "k7": 0.958, "k3-stack2": 0.966, "k3-stack3": 0.969}
SLOWER = {"torch": 1.0, "tensorflow": 1.5}  # TensorFlow's forward and backward take 1.5x as long
SEEDS = (0, 1, 2, 3, 4)
SHIFT = (-0.02, 0.0, 0.015, -0.01, 0.02)  # per seed, every arch alike: large against the archs' differences
WOBBLE = {"k3": (0, 0, 0, 0, 0), "k5": (0.002, -0.001, 0, 0.001, -0.002), "k7": (0, 0.001, -0.001, 0, 0),
          "k3-stack2": (-0.001, 0.001, 0, 0.002, -0.002), "k3-stack3": (0.001, 0, -0.001, 0, 0)}
DRIFT = 0.0022  # the repeat's test accuracy differs from the replicate's by this much at epoch 2


def summary(median, rng, n=20):
    samples = list(median * (1 + 0.04 * rng.standard_normal(n)))
    q1, q3 = np.percentile(samples, [25, 75])
    return {"median": float(np.median(samples)), "iqr": float(q3 - q1), "cv": float(np.std(samples) / np.mean(samples)),
            "n": n, "samples": samples}


def make_record(task, framework, arch, seed=0, slowdown=1.0, accuracy=None, engine="eager", study="kernel",
                role=None, converged=None, drift=0.0):
    """A realistic record: backward time proportional to the arch's FLOPs (times slowdown); a train cell's test
    accuracy is `accuracy` (default ACCURACY) after its last epoch, `drift` added at epoch 2."""
    image_size, in_channels = (16, 3) if task == "speed" else (8, 1)
    kernel, depth = ARCHS[arch]
    archd = {"name": arch, "in_channels": in_channels, "num_classes": 10,
             "blocks": [{"width": w, "kernel": kernel, "depth": depth, "activation": "relu", "pieces": 1, "pool": 2}
                        for w in (32, 64)]}
    s = spec.ArchSpec.from_dict(arch, archd, in_channels, 10)
    params, flops = spec.param_count(s), spec.forward_flops(s, image_size)
    cell_id = f"{study}_{arch}_{framework}-{engine}_cpu1-none_b64_s{seed}_{task}"
    cell = {"study": study, "task": task, "framework": framework, "engine": engine, "device": "cpu", "devices": 1,
            "parallelism": "none", "batch_size": 64, "image_size": image_size, "seed": seed, "threads": 2,
            "arch": archd, "settings": {"warmup": 3, "min_repeats": 5, "max_repeats": 30} if task == "speed"
            else {"epochs": 3, "lr": 0.05, "momentum": 0.9, "dataset": "digits", **({"role": role} if role else {})}}
    record = new_record(cell, cell_id, counts={"params": params, "params_framework": params, "flops_forward": flops},
                        process={"import_s": 4.3}, wall_s=3.2, started="2026-11-28T23:59:00+00:00",
                        environment={"python": "3.11.7", "versions": {framework: "1.0"}, "device_model": "cpu"})
    rng = np.random.default_rng(zlib.crc32(cell_id.encode()))
    if task == "speed":
        forward = flops * 64 / 20e9 * SLOWER[framework]
        phases = {"forward": summary(forward, rng), "backward": summary(2 * forward * slowdown, rng),
                  "optimizer": summary(0.002, rng)}
        phases["total"] = summary(sum(p["median"] for p in phases.values()), rng)
        step = summary(phases["total"]["median"] * 1.02, rng)
        record["timings"] = {"first_step": 0.21, "phases": phases, "step": step}
    else:
        test = ACCURACY[arch] if accuracy is None else accuracy
        train = min(1.0, test + params / 2e6)
        epochs = [{"epoch": e, "train_loss": 1.0 / e, "train_accuracy": train * e / 3, "test_loss": 1.1 / e,
                   "test_accuracy": test * e / 3 + (drift if e == 2 else 0), "seconds": 1.5 + 0.1 * e}
                  for e in (1, 2, 3)]
        record["training"] = {"epochs": epochs, "dataset": {"name": "digits", "train_size": 1347, "test_size": 450}}
        if converged is not None:
            record["training"] |= {"converged": converged, "stopped_epoch": 3,
                                   "criterion": {"patience": 2, "min_delta": 0.001, "max_epochs": 3}}
    return record


def seed_accuracy(arch, seed, accuracy=None):
    return (accuracy or ACCURACY)[arch] + SHIFT[seed] + WOBBLE[arch][seed]


def kernel_records(slowdown=None, accuracy=None, frameworks=("torch", "tensorflow"), unconverged=()):
    """Speed cells in both frameworks; train cells: SEEDS in PyTorch (replicates), seed 0 in TensorFlow (the
    repeat). unconverged: (arch, seed) of replicates that hit the epoch cap."""
    accuracy = {**ACCURACY, **(accuracy or {})}
    speed = [make_record("speed", f, arch, slowdown=(slowdown or {}).get(arch, 1.0))
             for arch in ARCHS for f in frameworks]
    train = [make_record("train", frameworks[0], arch, seed, accuracy=seed_accuracy(arch, seed, accuracy),
                         role="replicate", converged=(arch, seed) not in unconverged)
             for arch in ARCHS for seed in SEEDS]
    repeat = [make_record("train", f, arch, 0, accuracy=seed_accuracy(arch, 0, accuracy), role="repeat",
                          converged=True, drift=DRIFT) for arch in ARCHS for f in frameworks[1:]]
    return speed + train + repeat


def published(tmp_path, records):
    """The run as every study reads it: records -> tidy.csv -> read back."""
    folder = tmp_path / f"records{len(list(tmp_path.glob('records*')))}"
    folder.mkdir()
    for r in records:
        (folder / f"{r['cell_id']}.json").write_text(json.dumps(r))
    return read_run(write_tidy(folder, folder / "generated"), reference=None)


def verdicts(run):
    return {v.key: v for v in values.verdicts(run)}


def median(run, arch, phase="backward", framework="torch", metric="time"):
    df = run.tidy
    rows = df[(df.arch == arch) & (df.metric == metric) & (df.phase == phase) & (df.framework == framework)]
    return rows.value.median()

"""A small run of every study's records (tests/test_analysis.py) for the tests that read a whole run."""
import json
import zlib

import numpy as np
from conftest import new_record

from convbench import spec

ARCHS = {
    "k3": [(32, 3, 1, 1), (64, 3, 1, 1)],
    "k5": [(32, 5, 1, 1), (64, 5, 1, 1)],
    "k7": [(32, 7, 1, 1), (64, 7, 1, 1)],
    "k3-stack2": [(32, 3, 2, 1), (64, 3, 2, 1)],
    "k3-stack3": [(32, 3, 3, 1), (64, 3, 3, 1)],
    "relu": [(32, 3, 1, 1), (64, 3, 1, 1)],
    "maxout2-eqparams": [(32, 3, 1, 2), (64, 3, 1, 2)],
    "maxout2-eqwidth": [(64, 3, 1, 2), (128, 3, 1, 2)],
}
STUDIES = {"kernel": ["k3", "k5", "k7", "k3-stack2", "k3-stack3"], "activation": ["relu", "maxout2-eqparams", "maxout2-eqwidth"]}
FRAMEWORKS = {"torch": {"torch": "2.13.0+cpu"}, "tensorflow": {"tensorflow": "2.21.0", "keras": "3.15.1"}}
# Test accuracy per arch; train accuracy is this plus a gap that grows with the parameters.
ACCURACY = {"k3": 0.951, "k5": 0.962, "k7": 0.958, "k3-stack2": 0.966, "k3-stack3": 0.969,
            "relu": 0.951, "maxout2-eqparams": 0.944, "maxout2-eqwidth": 0.972}
FAILED = "kernel_k7_tensorflow-eager_cpu1-none_b64_s0_train"
ERROR = "Traceback (most recent call last):\n  File \"run.py\", line 3\nResourceExhaustedError: OOM when allocating tensor"


def arch_dict(name, in_channels):
    blocks = [{"width": w, "kernel": k, "depth": d, "activation": "maxout" if p > 1 else "relu", "pieces": p, "pool": 2}
              for w, k, d, p in ARCHS[name]]
    return {"name": name, "in_channels": in_channels, "num_classes": 10, "blocks": blocks}


def summary(median, rng, n=20):
    samples = list(median * (1 + 0.04 * rng.standard_normal(n)))
    q1, q3 = np.percentile(samples, [25, 75])
    return {"median": float(np.median(samples)), "iqr": float(q3 - q1), "cv": float(np.std(samples) / np.mean(samples)),
            "n": n, "samples": samples}


def make_record(study, task, framework, arch, seed=0, slowdown=1.0, accuracy=None):
    """A realistic record; backward time grows with the arch's FLOPs (times `slowdown`), TF a bit slower."""
    image_size, in_channels = (16, 3) if task == "speed" else (8, 1)
    cell_id = f"{study}_{arch}_{framework}-eager_cpu1-none_b64_s{seed}_{task}"
    archd = arch_dict(arch, in_channels)
    s = spec.ArchSpec.from_dict(arch, archd, in_channels, 10)
    params, flops = spec.param_count(s), spec.forward_flops(s, image_size)
    cell = {"study": study, "task": task, "framework": framework, "engine": "eager", "device": "cpu", "devices": 1,
            "parallelism": "none", "batch_size": 64, "image_size": image_size, "seed": seed, "threads": 2, "arch": archd,
            "settings": {"warmup": 3, "min_repeats": 5, "max_repeats": 30} if task == "speed"
            else {"epochs": 3, "lr": 0.05, "momentum": 0.9, "dataset": "digits"}}
    record = new_record(cell, cell_id, counts={"params": params, "params_framework": params, "flops_forward": flops},
                        process={"import_s": 4.3 if framework == "torch" else 9.1}, wall_s=3.2,
                        started="2026-11-28T23:59:00+00:00",
                        environment={"python": "3.11.7", "platform": "Linux-6.8.0-x86_64-with-glibc2.39",
                                     "cpu_model": "AMD EPYC 7B13", "cpu_count": 2, "hostname": "bench-1",
                                     "git_commit": "abc123def4567890", "git_dirty": False, "convbench": "0.1.0",
                                     "numpy": "2.4.6", "versions": FRAMEWORKS[framework],
                                     "threads": {"intra_op": 2, "inter_op": 1},
                                     "flags": {"layout": "NCHW" if framework == "torch" else "NHWC"},
                                     "device_model": "cpu"})
    rng = np.random.default_rng(zlib.crc32(cell_id.encode()))
    if task == "speed":
        forward = flops * 64 / 20e9 * (1.0 if framework == "torch" else 1.5)
        phases = {"forward": summary(forward, rng), "backward": summary(2 * forward * slowdown, rng),
                  "optimizer": summary(0.002, rng)}
        phases["total"] = summary(sum(p["median"] for p in phases.values()), rng)
        record["timings"] = {"first_step": 0.21, "phases": phases, "step": summary(phases["total"]["median"] * 1.02, rng)}
    else:
        test = ACCURACY[arch] if accuracy is None else accuracy
        train = min(1.0, test + params / 2e6)
        epochs = [{"epoch": e, "train_loss": 1.0 / e, "train_accuracy": train * e / 3, "test_loss": 1.1 / e,
                   "test_accuracy": test * e / 3, "seconds": 1.5 + 0.1 * e} for e in (1, 2, 3)]
        record["training"] = {"epochs": epochs, "dataset": {"name": "digits", "train_size": 1347, "test_size": 450}}
    if cell_id == FAILED:
        record.update(status="failed", error=ERROR)
        del record["training"]
    return record


def write_run(root, slowdown=None, accuracy=None):
    """Write a run's records under root/records; slowdown/accuracy: {arch: value} overrides. Returns the dir."""
    records = root / "records"
    for study, archs in STUDIES.items():
        for arch in archs:
            for framework in FRAMEWORKS:
                for task in ("speed", "train"):
                    r = make_record(study, task, framework, arch, slowdown=(slowdown or {}).get(arch, 1.0),
                                    accuracy=(accuracy or {}).get(arch))
                    path = records / task / framework / f"{r['cell_id']}.json"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(json.dumps(r, indent=1))
    return records


def load(records, study, arch, framework, task):
    """The record of one cell, read back from a written run."""
    return json.loads((records / task / framework / f"{study}_{arch}_{framework}-eager_cpu1-none_b64_s0_{task}.json").read_text())

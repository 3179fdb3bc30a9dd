"""Records of the engines study for its tests (tests/test_analysis_engines.py) and the tests built on them."""
import json
import zlib

import numpy as np
from conftest import new_record

from convbench import spec
from convbench.analysis import read_run, write_tidy

ENGINES = {"torch": ["eager", "torchscript", "compile"], "tensorflow": ["eager", "function", "xla"]}
ARCHS = {"k3": 3, "k5": 5, "k7": 7}  # two blocks of one k x k convolution each: 32 and 64 filters
# Backward time relative to PyTorch eager's, per setup; tests override some.
BACKWARD = {"torch-eager": 1.0, "torch-torchscript": 1.0, "torch-compile": 0.8,
            "tensorflow-eager": 1.6, "tensorflow-function": 1.2, "tensorflow-xla": 0.9}
CEILINGS = {"torch": (108e9, 12e9), "tensorflow": (96e9, 11e9)}  # GEMM FLOP/s, copy bytes/s
LAYER_RATE = {"torch": 60e9, "tensorflow": 50e9}  # forward convolution FLOP/s
BACKWARD_HALVES = {"torch": (1.2, 1.4), "tensorflow": (1.5, 2.0)}  # backward-input, -weight over forward
MAX_IQR_RATIO = 0.1
FAILED_ENGINE = "engines_k7_tensorflow-xla_cpu1-none_b64_s0_speed"
NOISY = ("engines_k5_torch-compile_cpu1-none_b64_s0_speed", "backward")
WARNING = ("`torch.jit.script` is deprecated. Please switch to `torch.compile` or `torch.export`; TorchScript "
           "will not receive new features.\n  warnings.warn(")


def summary(samples):
    samples = [float(x) for x in samples]
    q1, q3 = np.percentile(samples, [25, 75])
    median = float(np.median(samples))
    return {"median": median, "iqr": float(q3 - q1), "cv": float(np.std(samples) / abs(np.mean(samples))),
            "n": len(samples), "samples": samples, "noisy": bool((q3 - q1) / abs(median) > MAX_IQR_RATIO)}


def ceilings(framework):
    rng = np.random.default_rng(len(framework))
    gemm, bandwidth = CEILINGS[framework]
    return {"gemm_flops": summary(gemm * (1 + 0.01 * rng.standard_normal(7))),
            "memory_bandwidth": summary(bandwidth * (1 + 0.01 * rng.standard_normal(7))),
            "gemm_n": 2048, "copy_bytes": 256 * 2**20}


def flags(framework):
    if framework == "torch":
        return {"layout": "NCHW", "mkldnn": True, "deterministic": False}
    return {"layout": "NHWC", "xla_auto_jit": False, "onednn": True}


def base_record(study, task, framework, engine, archd, image_size, cell_id):
    """What every record holds: the cell, environment and process of a CPU run."""
    cell = {"study": study, "task": task, "framework": framework, "engine": engine, "device": "cpu", "devices": 1,
            "parallelism": "none", "batch_size": 64, "image_size": image_size, "seed": 0, "threads": 2,
            "arch": archd, "settings": {"warmup": 3, "min_repeats": 5, "max_repeats": 30,
                                        "max_iqr_ratio": MAX_IQR_RATIO}}
    return new_record(cell, cell_id,
                      process={"import_s": 4.3 if framework == "torch" else 9.1, "ceilings": ceilings(framework)},
                      wall_s=3.2, started="2026-11-28T23:59:00+00:00",
                      environment={"python": "3.11.7", "cpu_model": "AMD EPYC 7B13", "cpu_count": 2,
                                   "versions": {"torch": "2.13.0+cpu"} if framework == "torch" else
                                   {"tensorflow": "2.21.0"}, "threads": {"intra_op": 2, "inter_op": 1},
                                   "flags": flags(framework), "device_model": "cpu"})


def engine_record(framework, engine, arch, backward=None, n=30, study="engines"):
    """A speed cell; TF graph engines derive their phases from three programs per repeat."""
    setup = f"{framework}-{engine}"
    cell_id = f"{study}_{arch}_{setup}_cpu1-none_b64_s0_speed"
    k = ARCHS[arch]
    archd = {"name": arch, "in_channels": 3, "num_classes": 10,
             "blocks": [{"width": w, "kernel": k, "depth": 1, "activation": "relu", "pieces": 1, "pool": 2}
                        for w in (32, 64)]}
    record = base_record(study, "speed", framework, engine, archd, 16, cell_id)
    s = spec.ArchSpec.from_dict(arch, archd, 3, 10)
    flops = spec.forward_flops(s, 16)
    record["counts"] = {"params": spec.param_count(s), "flops_forward": flops, "flops_step": 3 * flops * 64,
                        "bytes_step": spec.step_bytes(s, 16, 64)}
    rng = np.random.default_rng(zlib.crc32(cell_id.encode()))
    forward = flops * 64 / 20e9 * (1.0 if framework == "torch" else 1.5)
    back = 2 * flops * 64 / 20e9 * (BACKWARD | (backward or {}))[setup]
    noise = 0.2 if (cell_id, "backward") == NOISY else 0.02
    fwd = forward * (1 + 0.02 * rng.standard_normal(n))
    bwd = back * (1 + noise * rng.standard_normal(n))
    opt = 0.0005 * (1 + 0.04 * rng.standard_normal(n))
    derived = framework == "tensorflow" and engine != "eager"
    if derived:  # forward+loss, forward+backward and whole-step programs, each with its own noise
        fwd_bwd = (forward + back) * (1 + 0.02 * rng.standard_normal(n))
        step = fwd_bwd + 0.0005 + 0.02 * forward * rng.standard_normal(n)
        bwd, opt = fwd_bwd - fwd, step - fwd_bwd
    else:
        step = (fwd + bwd + opt) * 0.98
    phases = {"forward": summary(fwd), "backward": summary(bwd), "optimizer": summary(opt),
              "total": summary(fwd + bwd + opt)}
    record["timings"] = {"first_step": 0.2, "phases": phases, "step": summary(step),
                         "phase_method": "derived" if derived else "direct",  # phase_overhead as convbench.run has it
                         "phase_overhead": phases["total"]["median"] / summary(step)["median"]}
    record["engine"] = {"name": engine, "compile_s": {"compile": 31.0, "xla": 4.2, "function": 2.1,
                                                      "torchscript": 0.9}.get(engine, 0.05),
                        "warnings": [WARNING] if engine == "torchscript" else [],
                        "optimizer": "SGD momentum, eager foreach" if framework == "torch" else "SGD momentum, Keras",
                        "precision": "float32"}
    if cell_id == FAILED_ENGINE:
        record.update(status="failed", error="Traceback (most recent call last):\n"
                                              "XlaRuntimeError: INTERNAL: RET_CHECK failure in convolution emitter")
        del record["timings"]
    return record


def layer_shapes():
    """(in_channels, filters, kernel, image size, activation, pieces) of the engines networks' convolutions, plus
    maxout on the 3x3 ones."""
    shapes = [(c, o, k, s, "relu", 1) for k in (3, 5, 7) for c, o, s in [(3, 32, 16), (32, 64, 8)]]
    return shapes + [(3, 32, 3, 16, "maxout", 2), (32, 64, 3, 8, "maxout", 2)]


def layer_record(framework, c, o, k, s, activation, pieces, n=25):
    name = f"c{c}-o{o}-k{k}-s{s}-{activation}{pieces if pieces > 1 else ''}"
    cell_id = f"layers_{name}_{framework}-eager_cpu1-none_b64_s0_layers"
    arch = {"name": name, "in_channels": c, "num_classes": 10,
            "blocks": [{"width": o, "kernel": k, "depth": 1, "activation": activation, "pieces": pieces, "pool": 1}]}
    record = base_record("layers", "layers", framework, "eager", arch, s, cell_id)
    flops = 2 * k * k * c * o * s * s * 64
    record["counts"] = {"params": k * k * c * o + o, "flops_forward": flops}
    rng = np.random.default_rng(zlib.crc32(cell_id.encode()))
    forward = flops / LAYER_RATE[framework]
    to_input, to_weight = BACKWARD_HALVES[framework]
    activation_time = 64 * o * s * s * 4 / 5e9 * (1.8 if pieces > 1 else 1.0)
    medians = {"forward": forward, "backward_input": to_input * forward, "backward_weight": to_weight * forward,
               "activation_forward": activation_time, "activation_backward": 1.5 * activation_time}
    record["timings"] = {"phases": {p: summary(m * (1 + 0.02 * rng.standard_normal(n))) for p, m in medians.items()},
                         "phase_method": "direct"}
    record["engine"] = {"name": "eager", "compile_s": 0.01, "warnings": [], "precision": "float32",
                        "optimizer": "none (no optimizer step)"}
    return record


def engine_records(backward=None, layers=True):
    records = [engine_record(f, e, a, backward) for f, es in ENGINES.items() for e in es for a in ARCHS]
    if layers:
        records += [layer_record(f, *shape) for f in ENGINES for shape in layer_shapes()]
    return records


def write_engines(root, records=None):
    """The engines and layer-wise records written under root/records, as a run writes them (for tests/test_paper.py)."""
    for r in engine_records() if records is None else records:
        path = root / "records" / r["cell"]["task"] / r["cell"]["framework"] / f"{r['cell_id']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r, indent=1))
    return root / "records"


def published(root, records):
    """The records written under root/records, published as the tidy tables and read back as a Run."""
    return read_run(write_tidy(write_engines(root, records), root / "generated"), reference=None)

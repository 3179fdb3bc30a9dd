"""Records of the scaling study for its tests (tests/test_analysis_scaling.py) and the tests built on them."""
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import new_record

from convbench.analysis import analyse_study, read_run, write_tidy
from convbench.analysis.latex import read_macros
from convbench.analysis.scaling import STUDY
from convbench.analysis.scaling.values import verdicts as scaling_verdicts
from convbench.analysis.study import Run
from convbench.parallel import bytes_model
from convbench.spec import ArchSpec, forward_flops, param_count

SECTIONS = Path(__file__).resolve().parents[2] / "paper" / "sections"
SECTION, APPENDIX = SECTIONS / "scaling.tex", SECTIONS / "appendix-scaling.tex"
MAIN = SECTIONS.parent / "main.tex"
SPREAD = 0.02 * np.arange(-3, 4)

DTENSOR = ('<unknown>:0: error: loc(fused["Conv2D:", "eager_operation"]): Filter for convolution must have fully '
           'replicated layout.')
TF_ERROR = "\n".join([
    "Traceback (most recent call last):",
    '  File "/work/main/src/convbench/parallel/tf_parallel.py", line 273, in tensor_parallel',
    "    _PROBED[key] = dtensor_probe(devices)",
    f"tensorflow.python.framework.errors_impl.UnknownError: {DTENSOR}",
    "tensorflow/dtensor/mlir/expansions/conv_spmd_expander.cc:164 ::",
    "",
    "The above exception was the direct cause of the following exception:",
    "",
    "Traceback (most recent call last):",
    '  File "/work/main/src/convbench/parallel/tf_worker.py", line 46, in check',
    "    tf_parallel.tensor_parallel(devices)  # raises, with DTensor's error",
    "NotImplementedError: DTensor tensor parallel does not run in TensorFlow 2.21.0; sharding a Conv2D filter's "
    "output channels over a mesh of 2 devices fails with UnknownError:",
    DTENSOR,
    "tensorflow/dtensor/cc/dtensor_graph_to_mlir_pass.cc:152 ::  [Op:Conv2D] name:",
    "In short: Filter for convolution must have fully replicated layout.", ""])


def arch(name="k3", kernel=3, widths=(32, 64)):
    return {"name": name, "in_channels": 3, "num_classes": 10,
            "blocks": [{"width": w, "kernel": kernel, "depth": 1, "activation": "relu", "pieces": 1, "pool": 2,
                        "init_radius": None, "radius_penalty": 0.0, "gates": False, "init_log_alpha": 2.0,
                        "l0_penalty": 0.0} for w in widths]}


def timing(ms):
    samples = [float(ms / 1e3 * (1 + x)) for x in SPREAD]
    q1, q3 = np.percentile(samples, [25, 75])
    return {"median": float(np.median(samples)), "iqr": float(q3 - q1), "cv": 0.04, "n": len(samples),
            "noisy": False, "samples": samples}


def record(framework="torch", archd=None, devices=1, parallelism="none", mode="strong", step=40.0, baseline=None,
           backward=None, comm=None, straggler_ms=0.0, batch_size=64, device="cpu", payload=None, failed=None):
    """A scaling record; times in ms. backward defaults to half the step, forward to a third, optimizer the rest."""
    archd = archd or arch()
    engine = "eager" if framework == "torch" else "function"
    spec = ArchSpec.from_dict(archd["name"], archd, archd["in_channels"], archd["num_classes"])
    global_batch = batch_size * (devices if mode == "weak" else 1)
    lag = f"-lag{straggler_ms:g}ms" if straggler_ms else ""
    cell_id = (f"scaling_{archd['name']}_{framework}-{engine}_{device}{devices}-{parallelism}-{mode}{lag}"
               f"_b{batch_size}_s0_scaling")
    cell = {"study": "scaling", "task": "scaling", "framework": framework, "engine": engine, "arch": archd,
            "batch_size": batch_size, "image_size": 16, "seed": 0, "threads": 2, "device": device, "devices": devices,
            "parallelism": parallelism, "train_fraction": 1.0,
            "settings": {"warmup": 3, "min_repeats": 7, "max_repeats": 7, "max_seconds": 2.0, "max_iqr_ratio": 0.1,
                         "lr": 0.05, "momentum": 0.9, "scaling": mode, "straggler_ms": straggler_ms}}
    environment = {"python": "3.11.7", "cpu_model": "Intel(R) Xeon(R) Processor", "cpu_count": 2,
                   "git_commit": "0" * 40, "device_model": "NVIDIA H200" if device == "cuda" else "x86_64",
                   "versions": {"torch": "2.13.0+cpu"} if framework == "torch" else
                   {"tensorflow": "2.21.0", "keras": "3.15.1"},
                   "distributed": {"backend": "nccl" if device == "cuda" else "gloo", "world_size": devices}
                   if framework == "torch" else {"strategy": "tf.distribute.MirroredStrategy"}}
    rec = new_record(cell, cell_id,
                     counts={"params": param_count(spec), "flops_forward": forward_flops(spec, 16),
                             "flops_step": 3 * forward_flops(spec, 16) * global_batch, "global_batch": global_batch,
                             "local_batch": global_batch // devices if parallelism == "data" else global_batch},
                     environment=environment, started="2026-11-29T00:51:53+00:00", wall_s=3.0)
    if failed:
        rec.update(status="failed", error=failed)
        return rec
    if framework == "torch":
        rec["counts"] |= {"params_local": param_count(spec), "threads_per_rank": max(1, 2 // devices)}
    backward = step / 2 if backward is None else backward
    forward = step / 3
    phases = {"forward": timing(forward), "backward": timing(backward), "optimizer": timing(step - forward - backward),
              "total": timing(step)}
    base = baseline if baseline is not None else step
    rec["timings"] = {
        "phase_method": "direct" if framework == "torch" else "derived", "repeats": 7, "phases": phases,
        "step": timing(step), "communication": timing(comm) if comm else None,
        "baseline": {"phases": {p: timing(v["median"] * 1e3 * base / step) for p, v in phases.items()},
                     "step": timing(base)},
        "efficiency": base / step, "exposed_communication": (step - base) / 1e3 * 0.8,
        "rank_step_medians": [step / 1e3] * devices}
    if parallelism == "data":
        model = bytes_model.data_parallel_bytes(spec, devices)
    elif parallelism == "tensor":
        model = bytes_model.tensor_parallel_bytes(spec, 16, global_batch, devices)
    else:
        model = {"payload_bytes": 0, "wire_bytes_per_rank": 0.0}
    counted = model["payload_bytes"] if payload is None else payload
    gloo = (bytes_model.tensor_parallel_bytes(spec, 16, global_batch, devices, factors=bytes_model.GLOO_FACTOR)
            if parallelism == "tensor" else model)
    rec["communication"] = {
        "measured": {"payload_bytes": counted,
                     "wire_bytes_per_rank": model["wire_bytes_per_rank"] * counted / max(model["payload_bytes"], 1)},
        "model": model, "payload_matches_model": counted == model["payload_bytes"]}
    if framework == "torch" and device == "cpu" and devices > 1:
        rec["communication"] |= {"loopback_bytes_per_step": 1.01 * devices * gloo["wire_bytes_per_rank"],
                                 "loopback_model_bytes_per_step": devices * gloo["wire_bytes_per_rank"]}
    elif framework == "tensorflow":
        rec["communication"]["measured"] = {"payload_bytes": counted}
    return rec


def fixture_records(widths=(32, 64), batch_size=64, archs=(("k3", 3), ("k5", 5))):
    """The default run's shape: PyTorch and TensorFlow, k3 and k5, 1 and 2 devices, data and tensor, strong and
    weak, a 20 ms straggler; TensorFlow's tensor-parallel cells fail."""
    records = []
    for name, k in archs:
        a = arch(name, k, widths)
        scale = 1.0 if k == 3 else 1.5
        kw = {"archd": a, "batch_size": batch_size}
        records += [
            record("torch", devices=1, step=40 * scale, **kw),
            record("torch", devices=2, parallelism="data", step=25 * scale, baseline=20 * scale, comm=3 * scale, **kw),
            record("torch", devices=2, parallelism="data", mode="weak", step=50 * scale, baseline=42 * scale,
                   comm=3 * scale, **kw),
            record("torch", devices=2, parallelism="data", straggler_ms=20, step=45 * scale, baseline=20 * scale,
                   comm=3 * scale, **kw),
            record("torch", devices=2, parallelism="tensor", step=32 * scale, backward=20 * scale,
                   baseline=22 * scale, comm=8 * scale, **kw),
            record("torch", devices=2, parallelism="tensor", mode="weak", step=60 * scale, baseline=45 * scale,
                   comm=12 * scale, **kw),
            record("torch", devices=2, parallelism="tensor", straggler_ms=20, step=54 * scale, baseline=22 * scale,
                   comm=8 * scale, **kw),
            record("tensorflow", devices=1, step=10 * scale, **kw),
            record("tensorflow", devices=2, parallelism="data", step=11 * scale, baseline=10.5 * scale,
                   comm=1 * scale, **kw),
            record("tensorflow", devices=2, parallelism="tensor", failed=TF_ERROR, **kw),
        ]
    return records


def write_records(records, root: Path) -> Path:
    for r in records:
        group = f"{r['cell']['framework']}{r['cell']['devices']}"
        (root / group).mkdir(parents=True, exist_ok=True)
        (root / group / f"{r['cell_id']}.json").write_text(json.dumps(r))
    return root


def run_of(records, root: Path) -> Run:
    """The records as the pipeline reads them: JSON files -> tidy.csv, samples.csv, environment.csv -> Run."""
    write_records(records, root / "records")
    return read_run(write_tidy(root / "records", root / "generated"), reference=None)


def analysed_in(records, root: Path):
    run = run_of(records, root)
    out = analyse_study(STUDY, run, root / "generated" / "scaling")
    return run, read_macros(out / "macros.tex"), {v.key: v for v in scaling_verdicts(run)}, out


def cb_preamble() -> str:
    """paper/main.tex up to and including \\input{macros.tex}: its packages, \\cb and \\ifcb."""
    text = MAIN.read_text()
    end = text.index(r"\input{macros.tex}") + len(r"\input{macros.tex}")
    assert r"\newcommand{\cb}" in text[:end] and r"\newcommand{\ifcb}" in text[:end]
    return text[:end]


def build(generated: Path, tmp_path: Path) -> str:
    from convbench.analysis import build_pdf

    paper = tmp_path / "paper"
    (paper / "sections").mkdir(parents=True)
    for section in (SECTION, SECTIONS / "scaling-projection.tex", APPENDIX):
        shutil.copy(section, paper / "sections" / section.name)
    shutil.copy(MAIN.parent / "refs.bib", paper / "refs.bib")
    (paper / "main.tex").write_text(cb_preamble() + "\n\\begin{document}\n\\section{Method}\\label{sec:method}\n"
                                    "\\input{sections/scaling}\n\\bibliographystyle{plain}\n\\bibliography{refs}\n"
                                    "\\appendix\n\\input{sections/appendix-scaling}\n\\end{document}\n")
    pdf = build_pdf(generated, tmp_path / "scaling.pdf", paper_dir=paper)
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    return " ".join(text.split())


LATEX = pytest.mark.skipif(shutil.which("latexmk") is None or shutil.which("pdftotext") is None,
                           reason="latexmk and pdftotext (TeX Live, poppler-utils) are needed to build the section")

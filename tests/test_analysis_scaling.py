"""The scaling study's analysis (issue 6): efficiency, speed-up, bytes against the model, the crossover, the
straggler, failed cells, zero records, and the paper section built with LaTeX.

Fixture records follow convbench.parallel.worker (PyTorch: torchrun processes over gloo, or nccl on GPUs) and
convbench.parallel.tf_worker (TensorFlow: MirroredStrategy; tensor parallel fails in DTensor). Every timing's raw
samples are the median times 1 + 0.02 x (-3..3), so that the median is exactly the number the test names.
"""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convbench.analysis import macros, tidy
from convbench.analysis import scaling
from convbench.analysis.scaling import analyse_scaling
from convbench.parallel import bytes_model
from convbench.spec import ArchSpec, forward_flops, param_count

SECTION = Path(__file__).resolve().parents[1] / "paper" / "sections" / "scaling.tex"
MAIN = SECTION.parents[1] / "main.tex"
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
    rec = {"schema_version": 1, "cell_id": cell_id, "cell": cell,
           "counts": {"params": param_count(spec), "flops_forward": forward_flops(spec, 16),
                      "flops_step": 3 * forward_flops(spec, 16) * global_batch, "global_batch": global_batch,
                      "local_batch": global_batch // devices if parallelism == "data" else global_batch},
           "status": "ok", "error": None, "environment": environment, "started": "2026-11-29T00:51:53+00:00",
           "wall_s": 3.0}
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


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    root = tmp_path_factory.mktemp("scaling")
    records = tidy.load_records(write_records(fixture_records(), root / "records"))  # through the JSON files
    return records, analyse_scaling(records, root / "out"), root / "out"


def section_keys() -> set[str]:
    return set(re.findall(r"\\cb\{([^}]+)\}", re.sub(r"(?m)%.*$", "", SECTION.read_text())))


def test_efficiency_and_speedup_as_computed_by_hand(analysed):
    records, values, out = analysed
    df = scaling.cells(records)
    row = df[(df["setup"] == "torch-eager") & (df["arch"] == "k3") & (df["parallelism"] == "data")
             & (df["mode"] == "strong") & (df["straggler_ms"] == 0)].iloc[0]
    assert row["efficiency"] == pytest.approx(20 / 25)  # baseline / step
    assert row["speedup"] == pytest.approx(40 / 25)  # strong: the one-device step over this step
    key = "scaling/torch-eager/k3"
    assert values[f"{key}/data-strong/t2/efficiency"] == "0.80"
    assert values[f"{key}/data-strong/t2/speedup"] == "1.60"
    assert values[f"{key}/data-weak/t2/speedup"] == "1.60"  # weak: twice the work, 2 x 40 / 50
    assert values[f"{key}/data-weak/t2/efficiency"] == "0.84"  # 42 / 50
    assert values[f"{key}/tensor-strong/t2/speedup"] == "1.25"  # 40 / 32
    assert values[f"{key}/none-strong/t1/speedup"] == "1.00"
    assert values["scaling/tensorflow-function/k5/data-strong/t2/speedup"] == "0.91"  # 15 / 16.5
    times = (out / "tables" / "scaling_times.tex").read_text()
    assert "1.60" in times and "0.80" in times and "25.0 (" in times
    assert "PyTorch eager under strong scaling: data parallel 1.60$\\times$ on 2 devices" in \
        values["scaling/speedup-sentence"]


def test_phases_and_verdicts(analysed):
    _, values, out = analysed
    phases = (out / "tables" / "scaling_phases.tex").read_text()
    assert "Comm. alone" in phases and "3.00 (" in phases  # data parallel's collectives replayed alone, k3
    # tensor over data: backward 20 / 12.5 = 1.6, step 32 / 25 = 1.28; the samples' spread cannot overturn them
    assert values["scaling/verdict/torch-eager/k3/strong/t2/backward-ratio"] == "1.60"
    assert values["scaling/verdict/torch-eager/k3/strong/t2/step-ratio"] == "1.28"
    assert float(values["scaling/verdict/torch-eager/k3/strong/t2/backward-ratio-lo"]) > 1
    sentence = values["scaling/verdict-sentence"]
    assert sentence.startswith("With 2 devices (simulated), the backward pass was shorter with data parallel in 4 of 4")
    assert "data" in (out / "tables" / "scaling_verdicts.tex").read_text()


def test_bytes_table_shows_counted_payload_and_model(tmp_path):
    records = fixture_records()
    spec = ArchSpec.from_dict("k3", arch(), 3, 10)
    model = bytes_model.data_parallel_bytes(spec, 2)["payload_bytes"]
    records[1] = record("torch", devices=2, parallelism="data", step=25, comm=3, payload=model + 40)
    values = analyse_scaling(records, tmp_path)
    table = (tmp_path / "tables" / "scaling_bytes.tex").read_text()
    assert f"{model + 40:,}" in table and f"{model:,}" in table  # counted and modelled side by side
    assert " no " in table and " yes " in table
    tensor = bytes_model.tensor_parallel_bytes(spec, 16, 64, 2)
    assert f"{tensor['payload_bytes']:,}" in table
    assert f"{int(tensor['wire_bytes_per_rank']):,}" in table  # the ring model's wire bytes per rank
    assert "equalled the closed-form model in 9 of 10 parallel cells" in values["scaling/bytes-sentence"]
    assert "1.01" in values["scaling/bytes-sentence"]  # the loopback counter against the gloo model
    # gloo runs its reduce-scatter as an all-reduce: 1.5 times the ring model's bytes, times the fixture's 1.01
    assert "1.51$\\times$ the ring model's bytes" in values["scaling/gloo-sentence"]


def crossover_by_hand(widths, kernel, image=16, classes=10, in_channels=3, t=2) -> int:
    """Ring model: data parallel 2(t-1)/t x 4 x parameters; tensor parallel 2(t-1)/t x (maps of the first block after
    its pool + 2 x logits) x 4 per example of the global batch."""
    w1, w2 = widths
    params = kernel**2 * in_channels * w1 + w1 + kernel**2 * w1 * w2 + w2 + w2 * classes + classes
    per_example = w1 * (image // 2) ** 2 + 2 * classes
    exact = params / per_example
    return int(np.ceil(exact)) - 1


def test_crossover_sentence_follows_the_widths_and_batches(tmp_path):
    narrow = analyse_scaling(fixture_records(), tmp_path / "narrow")
    wide = analyse_scaling(fixture_records(widths=(64, 128)), tmp_path / "wide")
    small = analyse_scaling(fixture_records(batch_size=8), tmp_path / "small")
    for values, widths in [(narrow, (32, 64)), (wide, (64, 128))]:
        for k in scaling.KERNELS:
            assert values[f"scaling/crossover/k{k}-batch"] == str(crossover_by_hand(widths, k))
    assert narrow["scaling/crossover/k3-batch"] == "9" and narrow["scaling/crossover/k9-batch"] == "84"
    assert narrow["scaling/crossover-sentence"] != wide["scaling/crossover-sentence"]
    assert "32 and 64 filters" in narrow["scaling/crossover-sentence"]
    assert "64 and 128 filters" in wide["scaling/crossover-sentence"]
    assert "at any device count" in narrow["scaling/crossover-sentence"]
    # At a global batch of 64 both kernels move fewer bytes under data parallel; at 8 tensor parallel wins for 3x3
    # (crossover 9) and 5x5 (26), and data parallel still wins at 16 (weak scaling's global batch) for 3x3.
    assert "5$\\times$5 kernels at global batches of 8 and 16" in small["scaling/crossover-sentence"]
    assert "tensor parallel moves fewer bytes" not in narrow["scaling/crossover-sentence"]
    assert "tensor parallel moves fewer bytes with 3$\\times$3 kernels at a global batch of 8 and " in \
        small["scaling/crossover-sentence"]
    assert "data parallel moves fewer bytes with 3$\\times$3 kernels at a global batch of 16" in \
        small["scaling/crossover-sentence"]
    table = (tmp_path / "narrow" / "tables" / "scaling_crossover.tex").read_text()
    assert "9x9" in table and " 84 " in table


def test_straggler_ratio(analysed):
    _, values, out = analysed
    key = "scaling/straggler/torch-eager/k3"
    assert values[f"{key}/data/t2/ratio"] == "1.80"  # 45 / 25
    assert values[f"{key}/data/t2/added-ms"] == "20.0"
    assert values[f"{key}/tensor/t2/ratio"] == "1.69"  # 54 / 32
    assert float(values[f"{key}/data/t2/ratio-lo"]) < 1.80 < float(values[f"{key}/data/t2/ratio-hi"])
    sentence = values["scaling/straggler-sentence"]
    assert "the step under data parallel by 1.80$\\times$" in sentence
    assert "for a delay of 20\\,ms" in sentence
    assert "1.80 [" in (out / "tables" / "scaling_straggler.tex").read_text()


def test_failed_tensorflow_tensor_cell_is_shown_with_its_error(analysed):
    _, values, out = analysed
    assert "\\emph{failed}" in (out / "tables" / "scaling_times.tex").read_text()
    failed = (out / "tables" / "scaling_failed.tex").read_text()
    assert "In short: Filter for convolution must have fully replicated layout." in failed
    assert "scaling\\char95\\allowbreak{}k3\\char95\\allowbreak{}tensorflow-function" in failed
    sentence = values["scaling/tf-tensor-sentence"]
    assert sentence.startswith("2 of 2 TensorFlow tensor-parallel cells failed in TensorFlow 2.21.0")
    assert "NotImplementedError: DTensor tensor parallel does not run in TensorFlow 2.21.0" in sentence
    assert "Filter for convolution must have fully replicated layout." in sentence
    assert values["scaling/cells-failed"] == "2"
    assert "NotImplementedError: hybrid parallelism" in values["scaling/hybrid-sentence"]  # from the workers' code


def test_a_failed_hybrid_cell_quotes_its_record(tmp_path):
    error = ("rank 0: Traceback (most recent call last):\n  File \"worker.py\", line 50, in check\n"
             "NotImplementedError: hybrid parallelism (data-parallel convolutions, model-parallel classifier) is not "
             "built: splitting a 640-weight classifier saves next to nothing\n")
    records = [*fixture_records(), record("torch", devices=2, parallelism="hybrid", failed=error)]
    values = analyse_scaling(records, tmp_path)
    assert values["scaling/hybrid-sentence"].startswith("The 1 hybrid cell of this run failed")
    assert "splitting a 640-weight classifier" in values["scaling/hybrid-sentence"]
    assert "rank 0" not in values["scaling/hybrid-sentence"]


@pytest.mark.parametrize("records", [[], [{"cell_id": "x", "cell": {"task": "speed"}, "status": "ok"}]],
                         ids=["none", "no-scaling-cell"])
def test_zero_records_give_placeholders_and_every_key(tmp_path, records):
    values = analyse_scaling(records, tmp_path)
    for name in scaling.FIGURES:
        assert (tmp_path / "figures" / f"{name}.pdf").stat().st_size > 0
    for name in scaling.TABLES:
        assert (tmp_path / "tables" / f"{name}.tex").exists()
    assert "No scaling cells ran" in (tmp_path / "tables" / "scaling_times.tex").read_text()
    assert values["scaling/scope-sentence"] == scaling.NONE
    assert section_keys() <= set(values), sorted(section_keys() - set(values))
    assert {f"scaling/{k}" for k in scaling.ALWAYS} <= set(values)


def test_section_quotes_only_its_own_keys_tables_and_figures(analysed):
    _, values, _ = analysed
    text = re.sub(r"(?m)%.*$", "", SECTION.read_text())
    assert section_keys() and all(k.startswith("scaling/") for k in section_keys())
    assert section_keys() <= {f"scaling/{k}" for k in scaling.ALWAYS} <= set(values)
    assert set(re.findall(r"\\input\{tables/([^}]+)\}", text)) == set(scaling.TABLES)
    assert set(re.findall(r"\\includegraphics\[[^]]*\]\{figures/([^}]+)\.pdf\}", text)) == set(scaling.FIGURES)
    typed = re.findall(r"\d+\.\d+|\d+\s*\\?%|\d+\s*(?:ms|s)\b", text)
    assert not typed, typed


def test_more_devices_on_gpus(tmp_path):
    """1, 2, 4 and 8 GPUs: keys and panels per device count, and no word of simulated devices."""
    a = arch("k3", 3, (64, 128))
    records = [record("torch", archd=a, devices=1, step=8.0, device="cuda", batch_size=256)]
    for t in (2, 4, 8):
        for parallelism, step in (("data", 8.0 / t * 1.1), ("tensor", 8.0 / t * 1.4)):
            records.append(record("torch", archd=a, devices=t, parallelism=parallelism, step=step, baseline=8.0 / t,
                                  comm=0.2, device="cuda", batch_size=256))
    values = analyse_scaling(records, tmp_path)
    assert values["scaling/torch-eager/k3/data-strong/t8/speedup"] == f"{8 / 1.1:.2f}"
    assert values["scaling/torch-eager/k3/tensor-strong/t4/efficiency"] == f"{1 / 1.4:.2f}"
    assert values["scaling/device-counts"] == "1, 2, 4 and 8"
    assert values["scaling/crossover-devices"] == "2, 4 and 8"
    assert "simulated" not in values["scaling/hardware-sentence"]
    assert "NVIDIA H200" in values["scaling/hardware-sentence"]
    sentence = values["scaling/verdict-sentence"]
    assert all(f"With {t} devices, the backward pass" in sentence for t in (2, 4, 8))
    assert "loopback" in values["scaling/gloo-sentence"] and "No cell" in values["scaling/gloo-sentence"]
    for name in scaling.FIGURES:
        assert (tmp_path / "figures" / f"{name}.pdf").stat().st_size > 5000  # drawn, not a placeholder


def cb_preamble() -> str:
    """paper/main.tex up to and including \\input{macros.tex}: its packages and its \\cb."""
    text = MAIN.read_text()
    end = text.index(r"\input{macros.tex}") + len(r"\input{macros.tex}")
    assert r"\newcommand{\cb}" in text[:end]
    return text[:end]


@pytest.mark.skipif(shutil.which("latexmk") is None or shutil.which("pdftotext") is None,
                    reason="latexmk and pdftotext (TeX Live, poppler-utils) are needed to build the section")
def test_section_builds_with_latex_and_shows_the_fixture(analysed, tmp_path):
    from convbench.analysis import build_pdf

    _, values, out = analysed
    generated = tmp_path / "generated"
    shutil.copytree(out, generated)
    macros.write_macros(values, generated / "macros.tex")
    paper = tmp_path / "paper"
    (paper / "sections").mkdir(parents=True)
    shutil.copy(SECTION, paper / "sections" / "scaling.tex")
    (paper / "refs.bib").write_text("")
    (paper / "main.tex").write_text(cb_preamble() + "\n\\begin{document}\n\\section{Method}\\label{sec:method}\n"
                                    "\\input{sections/scaling}\n\\end{document}\n")
    pdf = build_pdf(generated, tmp_path / "scaling.pdf", paper_dir=paper)
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    text = " ".join(text.split())
    assert "The backward pass on several devices" in text
    assert "data parallel 1.60× on 2 devices" in text  # the fixture's speed-up, from the generated sentence
    assert "Filter for convolution must have fully replicated layout." in text
    assert "??" not in text.replace("[?]", "")  # every table and figure reference resolved


def test_imports_no_framework():
    code = ("import sys, convbench.analysis.scaling, convbench.parallel.bytes_model; "
            "loaded = [m for m in sys.modules if m.split('.')[0] in ('torch', 'tensorflow', 'keras')]; "
            "assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", code], check=True)

"""The reference-GPU section: from committed records when they exist, a fallback in the paper when not."""
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from conftest import new_record

from convbench.analysis import analyse_study
from convbench.analysis.latex import read_macros
from convbench.analysis.reference import STUDY
from convbench.analysis.study import Run


def run_with(reference) -> Run:
    """The reference study reads only run.reference: the folder of committed GPU runs."""
    return Run(pd.DataFrame(), pd.DataFrame(columns=["cell_id", "phase", "repeat", "value"]), pd.DataFrame(),
               reference=reference)


def write_reference(root, gpu="nvidia-h200"):
    records = root / gpu / "records" / "speed" / "torch"
    records.mkdir(parents=True)
    samples = [0.0021, 0.0022, 0.0020, 0.0023]
    cell = {"study": "kernel", "task": "speed", "framework": "torch", "engine": "eager", "device": "cuda",
            "devices": 1, "parallelism": "none", "batch_size": 256, "image_size": 32, "seed": 0, "threads": 8,
            "arch": {"name": "k5", "in_channels": 3, "num_classes": 10,
                     "blocks": [{"width": 64, "kernel": 5, "depth": 1, "activation": "relu", "pieces": 1, "pool": 2}]},
            "settings": {"max_iqr_ratio": 0.1}}
    record = new_record(
        cell, "kernel_k5_torch-eager_cuda1-none_b256_s0_speed",
        counts={"params": 1, "flops_forward": 1, "flops_step": 3, "bytes_step": 3},
        timings={"phase_method": "direct", "first_step": 0.5,
                 "phases": {p: {"median": 0.002, "iqr": 0.0001, "cv": 0.05, "n": 4, "noisy": False, "samples": samples}
                            for p in ("forward", "backward", "optimizer", "total")},
                 "step": {"median": 0.0061, "iqr": 0.0002, "cv": 0.05, "n": 4, "noisy": False, "samples": samples}},
        environment={"device_model": "NVIDIA H200", "versions": {"torch": "2.13.0", "cuda": "12.8"},
                     "flags": {"cudnn_benchmark": True, "tf32_matmul": False}, "git_commit": "abcdef1234567890"})
    (records / f"{record['cell_id']}.json").write_text(json.dumps(record))
    (root / gpu / "config.yaml").write_text("run: paper-gpu\ndevice: cuda\n")  # what makes it a GPU reference run


def test_without_a_reference_run_the_flag_is_off(tmp_path):
    run = run_with(tmp_path / "reference")
    out = analyse_study(STUDY, run, tmp_path / "out")
    assert not STUDY.ran(run)
    values = read_macros(out / "macros.tex")
    assert values["reference/ran"] == "0" and values["reference/gpus"] == "none" and values["reference/records"] == "0"
    assert (out / "tables" / "reference.tex").read_text().strip() == "%"
    assert not STUDY.ran(run_with(None))


def test_a_committed_reference_run_becomes_a_table_with_its_hardware(tmp_path):
    write_reference(tmp_path / "reference")
    run = run_with(tmp_path / "reference")
    out = analyse_study(STUDY, run, tmp_path / "out")
    table = (out / "tables" / "reference-cells.tex").read_text()
    assert "6.10 (0.20)" in table and "PyTorch eager" in table  # the step: median (IQR) in ms
    assert "& 64 & 256$\\times$32$^2$ &" in table  # the GPU network's own sizes: maps per block, batch, image
    assert "NVIDIA H200" in table and "cudnn.benchmark True" in table and "TF32 matmul False" in table
    assert "commit abcdef123456" in table
    values = read_macros(out / "macros.tex")
    assert values["reference/ran"] == "1" and values["reference/gpus"] == "NVIDIA H200"
    assert values["reference/records"] == "1" and values["reference/commit"] == "abcdef123456"
    assert values["reference/tf32/ran"] == "0"  # one run: nothing to compare
    assert values["reference/graph/ran"] == "0" and values["reference/size/ran"] == "0"  # and no sweep
    assert "No reference run with cells of the overhead study" in (out / "tables" / "reference-overhead.tex").read_text()
    assert (out / "tables" / "reference.tex").read_text().strip() == "%"


COMMITTED = Path(__file__).resolve().parents[1] / "results" / "reference"


@pytest.mark.skipif(not (COMMITTED / "nvidia-h200-tf32").is_dir(), reason="the committed H200 records are not here")
def test_a_cpu_run_committed_beside_the_gpu_runs_is_no_reference_run(tmp_path):
    """results/reference/cpu-paper (the full-scale CPU run that make paper-full renders) is no GPU reference."""
    from convbench.analysis.reference.runs import gpu_runs, reference_runs

    write_reference(tmp_path / "reference")
    write_reference(tmp_path / "reference", gpu="cpu-paper")
    (tmp_path / "reference" / "cpu-paper" / "config.yaml").write_text("run: paper\ndevice: cpu\n")
    assert [p.name for p in gpu_runs(tmp_path / "reference")] == ["nvidia-h200"]
    assert list(reference_runs(tmp_path / "reference")) == ["nvidia-h200"]


def test_the_committed_h200_records_render_fp32_against_tf32(tmp_path):
    """The committed runs hold several cells of one network and framework (the kernel and engines studies both time
    k3 in eager mode) and layer cells: each gets its own row; TF32 against fp32 is a verdict per network and phase;
    the fp32 run's batch sweep gives eager against the CUDA graph, its size sweep the share of the peak."""
    run = run_with(COMMITTED)
    out = analyse_study(STUDY, run, tmp_path / "out")
    values = read_macros(out / "macros.tex")
    assert values["reference/runs"] == "2" and values["reference/commit"] == "bf3d39a0c88d"
    assert values["reference/launches"] == "2--3"  # the lease's deadline cut 7 cells' third launch
    k7 = "reference/tf32/k7/forward"
    assert values[f"{k7}-fp32-ms"] == "2.76" and values[f"{k7}-tf32-ms"] == "0.765"  # the 2.78 -> 0.79 ms
    assert values["reference/tf32/k7/forward/ratio-word"] == "faster than"  # the whole Welch interval below 1/1.05
    assert values["reference/tf32/k7/forward/ratio-kind"].startswith("Welch")
    assert values["reference/tf32/largest-arch"] == "k7" and values["reference/tf32/largest-phase"] == "forward"
    assert values["reference/tf32/forward/verdict"] and values["reference/tf32/networks"] == "5"
    assert values["reference/roof/any-above-peak"] == "0"
    assert 0 < float(values["reference/roof/torch-peak-percent-max"]) < 100
    verdicts = json.loads((out / "verdicts.json").read_text())
    assert len(verdicts) == 5 * 4 and all(v["lo"] <= v["estimate"] <= v["hi"] for v in verdicts)
    main = (out / "tables" / "reference.tex").read_text()
    assert "TF32 cuDNN True" in main and "TF32 cuDNN False" in main and "commit bf3d39a0c88d" in main
    cells = (out / "tables" / "reference-cells.tex").read_text()
    assert cells.count("\\begin{table}") == 3  # the fp32 run's speed and layer cells, the TF32 run's speed cells
    assert "engines & k3" in cells and "PyTorch torchscript" in cells and "c64-o128-k7-s16-relu" in cells
    # a CUDA graph of the whole step: many times faster at batch 1, where eager steps wait on kernel launches; within a
    # few percent at batch 1024, where the arithmetic takes the time
    graph = "reference/graph/first"
    assert values["reference/graph/first-arch"] == "k3" and values["reference/graph/last-arch"] == "k7"
    assert values["reference/graph/smallest-batch"] == "1" and values["reference/graph/largest-batch"] == "1024"
    assert float(values[f"{graph}/smallest/lo"]) > 3 and float(values[f"{graph}/largest/ratio"]) < 1.1
    assert values[f"{graph}/smallest/kind"].startswith("; ") and "interval" in values[f"{graph}/smallest/kind"]
    main = (out / "tables" / "reference.tex").read_text()  # intervals whose ends would print equal get more digits
    assert not re.search(r"(\d+\.\d+) \[\1, \1\]", main) and "1 point for accuracy" not in main
    overhead = (out / "tables" / "reference-overhead.tex").read_text()
    assert "PyTorch cudagraph (k3, 32)" in overhead and "PyTorch eager (k7, 32)" in overhead
    assert "$t$ interval of the weighted least-squares fit" in overhead  # the kind of interval, named
    assert (out / "figures" / "reference-overhead.pdf").stat().st_size > 10_000
    # the size sweep: the largest cells reach a larger share of the peak than the configuration's 32x32 batch-256 cells
    for which in ("first", "last"):
        assert values[f"reference/size/{which}/trend"] == "rises"
        assert float(values[f"reference/size/{which}/largest-percent"]) > float(values[f"reference/size/{which}/smallest-percent"])

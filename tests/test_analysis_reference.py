"""The reference-GPU section: from committed records when they exist, a fallback in the paper when not."""
import json

import pandas as pd

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
    record = {
        "schema_version": 1, "cell_id": "kernel_k5_torch-eager_cuda1-none_b256_s0_speed", "status": "ok", "error": None,
        "cell": {"study": "kernel", "task": "speed", "framework": "torch", "engine": "eager", "device": "cuda",
                 "devices": 1, "parallelism": "none", "batch_size": 256, "image_size": 32, "seed": 0, "threads": 8,
                 "arch": {"name": "k5", "in_channels": 3, "num_classes": 10,
                          "blocks": [{"width": 64, "kernel": 5, "depth": 1, "activation": "relu", "pieces": 1, "pool": 2}]},
                 "settings": {"max_iqr_ratio": 0.1}},
        "counts": {"params": 1, "flops_forward": 1, "flops_step": 3, "bytes_step": 3},
        "timings": {"phase_method": "direct", "first_step": 0.5,
                    "phases": {p: {"median": 0.002, "iqr": 0.0001, "cv": 0.05, "n": 4, "noisy": False, "samples": samples}
                               for p in ("forward", "backward", "optimizer", "total")},
                    "step": {"median": 0.0061, "iqr": 0.0002, "cv": 0.05, "n": 4, "noisy": False, "samples": samples}},
        "environment": {"device_model": "NVIDIA H200", "versions": {"torch": "2.13.0", "cuda": "12.8"},
                        "flags": {"cudnn_benchmark": True, "tf32_matmul": False}, "git_commit": "abcdef1234567890"},
    }
    (records / f"{record['cell_id']}.json").write_text(json.dumps(record))


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
    table = (out / "tables" / "reference.tex").read_text()
    assert "6.10 (0.20)" in table and "PyTorch eager" in table  # the step: median (IQR) in ms
    assert "NVIDIA H200" in table and "cudnn.benchmark True" in table and "TF32 matmul False" in table
    values = read_macros(out / "macros.tex")
    assert values["reference/ran"] == "1" and values["reference/gpus"] == "nvidia-h200"
    assert values["reference/records"] == "1"

"""Nothing above the roof: FLOPs counted over the taps inside the image, the theoretical peak of the hardware, and the
analysis marking any point above it.

The issue that started this: a 7x7 convolution 32->64 on 8x8 maps ran at 338 GFLOP/s, counted over every tap of the
padded kernel, against a measured GEMM ceiling of 196 GFLOP/s; only 61.7 % of its taps fall inside the image.
"""
import dataclasses
import platform
import sys

import numpy as np
import pytest
from conftest import new_record

from convbench import config, peak, run, spec
from convbench.analysis import analyse_study, records, roof, tidy
from convbench.analysis.latex import read_macros
from convbench.analysis.layers import STUDY as LAYERS_STUDY
from convbench.analysis.study import Run
from convbench.cells import Cell

DENSE_RATE = 338e9  # FLOP/s, every tap counted: the rate the issue measured for the 7x7 32->64 convolution on 8x8 maps
CPUINFO = """processor\t: 0
model name\t: AMD EPYC
cpu MHz\t\t: 2596.094
flags\t\t: fpu sse sse2 fma avx avx2 avx512f avx512dq
processor\t: 1
model name\t: AMD EPYC
cpu MHz\t\t: 2596.094
flags\t\t: fpu sse sse2 fma avx avx2 avx512f avx512dq
"""


def taps_by_brute_force(size: int, kernel: int) -> int:
    """Every (output position, tap) pair of a "same" convolution whose input pixel lies inside the image."""
    half = kernel // 2
    inside = 0
    for y in range(size):
        for x in range(size):
            for dy in range(-half, half + 1):
                for dx in range(-half, half + 1):
                    inside += 0 <= y + dy < size and 0 <= x + dx < size
    return inside


@pytest.mark.parametrize("size,kernel", [(8, 7), (16, 5), (4, 7), (2, 7), (1, 3), (9, 1)])
def test_inside_taps_is_the_count_of_taps_inside_the_image(size, kernel):
    assert spec.inside_taps(size, kernel) == taps_by_brute_force(size, kernel)


def layer_cell(c=32, o=64, k=7, s=8, batch=64):
    """A layer cell of the kind the pipeline makes: one convolution, 'same' padding, no pool."""
    block = spec.Block(width=o, kernel=k, pool=1)
    return Cell("layers", "layers", "torch", "eager", spec.ArchSpec(f"c{c}-o{o}-k{k}-s{s}-relu", (block,), c, 10),
                batch, s, 0, 2)


def test_a_layer_whose_padded_and_useful_counts_differ():
    counts = run._counts(layer_cell())  # the record's counts of the 7x7 32->64 convolution on 8x8 maps
    dense = 2 * 7 * 7 * 32 * 64 * 8 * 8 * 64
    assert counts["flops_forward"] == dense
    assert counts["flops_forward_useful"] == 2 * taps_by_brute_force(8, 7) * 32 * 64 * 64
    assert counts["flops_forward_useful"] / dense == pytest.approx(0.617, abs=0.001)
    one = run._counts(layer_cell(k=1))  # a 1x1 convolution has no tap outside the image
    assert one["flops_forward"] == one["flops_forward_useful"]


def test_a_speed_cell_records_both_counts():
    s = spec.ArchSpec.from_dict("k7", {"blocks": [{"width": 32, "kernel": 7}, {"width": 64, "kernel": 7}]}, 3, 10)
    cell = dataclasses.replace(layer_cell(), study="kernel", task="speed", arch=s, image_size=16, batch_size=64)
    counts = run._counts(cell)
    convs = [(3, 32, 16), (32, 64, 8)]
    useful = sum(2 * taps_by_brute_force(size, 7) * c * o for c, o, size in convs) + 2 * 64 * 10
    assert counts["flops_forward_useful"] == useful < counts["flops_forward"] == spec.forward_flops(s, 16)
    assert counts["flops_step_useful"] == 3 * useful * 64 and counts["flops_step"] == 3 * counts["flops_forward"] * 64


def test_cpu_peak_from_the_flags_and_the_clock(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(CPUINFO)
    p = peak.cpu_peak(2, info, tmp_path / "no-cpufreq")
    assert p["fp32_lanes"] == 16 and p["fma"] and p["flops_per_cycle_per_core"] == 16 * 2 * peak.FMA_UNITS
    assert p["flops"] == pytest.approx(2 * 2596.094e6 * 64) and "cpu MHz" in p["clock_source"]
    assert "assumed" in p["assumption"]
    info.write_text(CPUINFO.replace(" avx512f avx512dq", ""))
    (tmp_path / "max_freq").write_text("3000000\n")  # kHz: cpufreq's maximum wins over /proc/cpuinfo
    p = peak.cpu_peak(4, info, tmp_path / "max_freq")
    assert p["flops"] == pytest.approx(4 * 3.0e9 * 8 * 2 * peak.FMA_UNITS) and p["clock_source"].endswith("max_freq")


def test_a_measured_clock_above_the_reported_one_sets_the_peak(tmp_path):
    """Under a hypervisor 'cpu MHz' is the nominal clock; a boosting core runs faster, and the peak must follow."""
    info = tmp_path / "cpuinfo"
    info.write_text(CPUINFO)
    p = peak.cpu_peak(2, info, tmp_path / "no-cpufreq", measured=4.2e9)
    assert p["flops"] == pytest.approx(2 * 4.2e9 * 64) and p["clock_source"].startswith("measured")
    assert p["clocks_hz"][f"{info} 'cpu MHz' (largest)"] == pytest.approx(2596.094e6)
    slow = peak.cpu_peak(2, info, tmp_path / "no-cpufreq", measured=1.0e9)  # a busy machine cannot lower the peak
    assert slow["flops"] == pytest.approx(2 * 2596.094e6 * 64)


@pytest.mark.skipif(platform.machine() != "x86_64" or sys.platform != "linux", reason="the probe is x86-64 code")
def test_the_measured_clock_is_a_core_clock():
    """A dependent countdown runs one iteration per cycle: what it finds is a clock between 0.5 and 7 GHz, and a
    countdown twice as long takes about twice as long (it is the loop that is timed, not the call)."""
    hz = peak.measured_clock_hz(iterations=20_000_000)
    assert 0.5e9 < hz < 7e9
    assert peak.measured_clock_hz(iterations=40_000_000) == pytest.approx(hz, rel=0.3)


def test_gpu_peak_is_the_vendor_figure_for_the_precision():
    assert peak.gpu_peak("NVIDIA H200")["flops"] == 67e12
    assert peak.gpu_peak("NVIDIA H200", tf32=True)["flops"] == pytest.approx(494.7e12)
    assert "nvidia.com" in peak.gpu_peak("NVIDIA H200")["source"]
    assert peak.gpu_peak("Some GPU")["flops"] is None


def layer_record(cell, seconds: float, cpuinfo) -> dict:
    """A layer record as run_cell writes it: the cell's real counts, the process's ceilings with its peak."""
    samples = list(seconds * (1 + 0.01 * np.linspace(-1, 1, 9)))
    summary = {"median": float(np.median(samples)), "iqr": 0.005 * seconds, "cv": 0.01, "n": 9, "noisy": False,
               "samples": samples}
    gemm = {"median": 190e9, "best": 196e9, "iqr": 1e9, "cv": 0.01, "n": 5, "noisy": False, "samples": [196e9]}
    return new_record(cell, counts=run._counts(cell),
                      timings={"phase_method": "direct", "phases": {p: summary for p in
                                                                    ("forward", "backward_input", "backward_weight")}},
                      process={"ceilings": {"gemm_flops": gemm, "memory_bandwidth": {**gemm, "best": 20e9, "median": 20e9},
                                            "peak_flops": peak.cpu_peak(2, cpuinfo, "/nonexistent")}},
                      environment={"device_model": "x86_64"}, engine={"name": "eager"})


def layer_run(records_: list[dict]) -> Run:
    parsed = [records.parse(r) for r in records_]
    return Run(tidy.tidy(parsed), tidy.samples(parsed), tidy.environment(parsed))


def test_the_paper_configs_layer_cells_are_below_the_roof(tmp_path, capsys):
    """Every layer cell of config/paper.yaml (its networks hold the issue's 7x7 convolution) doing useful work as fast as the issue's 7x7 convolution did (338
    GFLOP/s counted densely, 208 GFLOP/s in useful FLOPs) stays below the theoretical peak of the 2-core machine that
    measured it (332 GFLOP/s); counted densely, that convolution was above both the measured GEMM ceiling and the
    peak. The same cell ten times faster is marked above the peak."""
    info = tmp_path / "cpuinfo"
    info.write_text(CPUINFO)
    useful_rate = DENSE_RATE * spec.inside_taps(8, 7) / (7 * 7 * 8 * 8)
    layers = [c for c in config.load("config/paper.yaml")[1] if c.task == "layers"]
    assert any(c.arch.name.startswith("c32-o64-k7-s8") for c in layers)
    made = [layer_record(c, run._counts(c)["flops_forward_useful"] / useful_rate, info) for c in layers]
    r = layer_run(made)
    points = roof.peak_points(r.tidy, "layers")
    assert len(points) == 3 * len(layers) and (points["fraction"] <= 1).all()
    assert (points["gemm_fraction"] > 1).all()  # the measured ceiling (196 GFLOP/s) alone is no roof
    assert roof.roof_values(r.tidy, "layers/roof", "layers")["layers/roof/any-above-peak"] == "0"
    dense = r.tidy[(r.tidy.metric == "achieved_flops_dense") & r.tidy.cell_id.str.contains("c32-o64-k7-s8")]
    assert dense["value"].to_numpy() == pytest.approx(DENSE_RATE)
    assert (dense["value"] > peak.cpu_peak(2, info, "/nonexistent")["flops"]).all()  # the dense count: above

    worst = next(c for c in layers if c.arch.name.startswith("c32-o64-k7-s8"))
    made.append(layer_record(dataclasses.replace(worst, batch_size=128),
                             run._counts(worst)["flops_forward_useful"] / (10 * useful_rate), info))
    r = layer_run(made)
    values = roof.roof_values(r.tidy, "layers/roof", "layers")
    assert values["layers/roof/any-above-peak"] == "1" and values["layers/roof/above-peak"] == "3"
    assert "above the theoretical peak" in capsys.readouterr().err
    out = analyse_study(LAYERS_STUDY, r, tmp_path / "out")
    macros = read_macros(out / "macros.tex")
    assert macros["layers/roof/any-above-peak"] == "1" and "k7" in macros["layers/roof/above-peak-cells"]
    assert (out / "figures" / "layers.pdf").stat().st_size > 0


def test_old_gpu_records_get_the_vendor_peak_for_their_precision():
    cell = dataclasses.replace(layer_cell(), device="cuda")
    record = layer_record(cell, 1e-3, "/nonexistent")
    del record["process"]["ceilings"]["peak_flops"]
    record["environment"] = {"device_model": "NVIDIA H200", "flags": {"tf32_cudnn": True}}
    df = layer_run([record]).tidy
    assert df[df.metric == "peak_flops"]["value"].tolist() == [pytest.approx(494.7e12)]
    useful = run._counts(cell)["flops_forward_useful"]
    fraction = df[(df.metric == "peak_fraction") & (df.phase == "forward")]["value"]
    assert fraction.tolist() == [pytest.approx(useful / record["timings"]["phases"]["forward"]["median"] / 494.7e12)]


def speed_record(cell, step_seconds: float, gemm: float, cpuinfo, bandwidth: float = 20e9, clock: float = 4.26e9) -> dict:
    """A speed record as run_cell writes it: the cell's real counts, a step median, the process's ceilings."""
    summary = {"median": step_seconds, "iqr": 0.01 * step_seconds, "cv": 0.01, "n": 9, "noisy": False,
               "samples": [step_seconds] * 9}
    ceiling = lambda v: {"median": 0.97 * v, "best": v, "iqr": 1e9, "cv": 0.01, "n": 5, "noisy": False,  # noqa: E731
                         "samples": [v]}
    return new_record(cell, counts=run._counts(cell),
                      timings={"phase_method": "direct", "phases": {"forward": summary}, "step": summary},
                      process={"ceilings": {"gemm_flops": ceiling(gemm), "memory_bandwidth": ceiling(bandwidth),
                                            "peak_flops": peak.cpu_peak(2, cpuinfo, "/nonexistent", measured=clock)}},
                      environment={"cpu_model": "AMD EPYC 7B13"}, engine={"name": "eager"})


def test_a_device_has_one_roof_the_best_gemm_any_framework_reached(tmp_path, capsys):
    """The issue's numbers: torch.mm reached 204 GFLOP/s on the 2-core AMD EPYC, TensorFlow's GEMM 462 on the same
    cores. A PyTorch step at 218 GFLOP/s of useful work was 106.9 % of a roof built from PyTorch's own GEMM; against
    the device's roof (TensorFlow's 462) and its peak (545 at the measured 4.26 GHz) it is below both. A step faster than the device's GEMM
    roof is counted above it; one on another CPU gets that CPU's roof."""
    info = tmp_path / "cpuinfo"
    info.write_text(CPUINFO)
    cells = {c.framework: c for c in config.load("config/config.yaml")[1]
             if c.task == "speed" and c.study == "engines" and c.arch.name == "k3" and c.engine == "eager"}
    torch_cell, tf_cell = cells["torch"], cells["tensorflow"]
    useful = run._counts(torch_cell)["flops_step_useful"]
    made = [speed_record(torch_cell, useful / 218e9, 204e9, info, bandwidth=30e9),
            speed_record(tf_cell, useful / 150e9, 462e9, info, bandwidth=25e9)]
    r = layer_run(made)
    roofs = roof.device_roofs(r.tidy)
    assert len(roofs) == 1 and roofs["gemm"].iloc[0] == 462e9 and roofs["bandwidth"].iloc[0] == 30e9
    assert roofs["gemm_framework"].iloc[0] == "tensorflow"
    fraction = r.tidy[(r.tidy.metric == "ceiling_fraction")].set_index("framework")["value"]
    intensity = r.tidy[(r.tidy.metric == "arithmetic_intensity")].set_index("framework")["value"]
    assert fraction["torch"] == pytest.approx(218e9 / min(462e9, 30e9 * intensity["torch"]))
    assert 218e9 / min(204e9, 30e9 * intensity["torch"]) > 1 > fraction["torch"]  # its own roof: above; the device's: not
    points = roof.peak_points(r.tidy, "speed")
    assert (points["fraction"] < 1).all() and (points["gemm_fraction"] < 1).all()
    assert points["peak"].tolist() == pytest.approx([2 * 4.26e9 * 64] * 2)
    values = roof.roof_values(r.tidy, "engines/roof", "speed")
    assert values["engines/roof/gemm-gflops"] == "462" and values["engines/roof/gemm-framework"] == "TensorFlow"
    assert values["engines/roof/peak-gflops"] == "545" and values["engines/roof/any-above-gemm"] == "0"
    assert values["engines/roof/any-above-peak"] == "0"

    made.append(speed_record(dataclasses.replace(torch_cell, seed=1), useful / 500e9, 204e9, info))
    values = roof.roof_values(layer_run(made).tidy, "engines/roof", "speed")  # above the GEMM roof, below the peak
    assert values["engines/roof/above-gemm"] == "1" and values["engines/roof/any-above-peak"] == "0"
    made.append(speed_record(dataclasses.replace(torch_cell, seed=3), useful / 600e9, 204e9, info))
    values = roof.roof_values(layer_run(made).tidy, "engines/roof", "speed")  # above both
    assert values["engines/roof/above-gemm"] == "2" and values["engines/roof/above-peak"] == "1"
    assert "above the theoretical peak" in capsys.readouterr().err
    twice = layer_run(made + made[:1]).tidy  # a record read twice (two folders) still gets its fractions
    assert len(twice[twice.metric == "ceiling_fraction"]) == len(made) + 1
    other = speed_record(dataclasses.replace(torch_cell, seed=2), useful / 218e9, 100e9, info)
    other["environment"]["cpu_model"] = "Intel Xeon"
    roofs = roof.device_roofs(layer_run(made + [other]).tidy)
    assert roofs.loc["Intel Xeon, 2 threads", "gemm"] == 100e9 and roofs.loc["AMD EPYC 7B13, 2 threads", "gemm"] == 462e9


def test_the_quoted_clock_is_the_one_behind_the_quoted_peak(tmp_path):
    """The peak is the highest any process recorded; the text quoted the median clock beside it (3.57 GHz beside a
    485 GFLOP/s peak that 2 cores x 64 FLOP a cycle reach only at 3.79): the clock quoted is now the peak's."""
    info = tmp_path / "cpuinfo"
    info.write_text(CPUINFO)
    cell = next(c for c in config.load("config/config.yaml")[1] if c.task == "speed" and c.engine == "eager")
    made = [speed_record(dataclasses.replace(cell, seed=i), 0.01, 200e9, info, clock=hz)
            for i, hz in enumerate((3.4e9, 3.57e9, 3.79e9))]
    values = roof.roof_values(layer_run(made).tidy, "engines/roof", "speed")
    assert values["engines/roof/measured-clock-ghz"] == "3.79"
    assert float(values["engines/roof/peak-gflops"]) == pytest.approx(2 * 3.79 * 64, abs=0.5)

"""The theoretical peak FLOP/s of the device a process times on: the roof no measurement may pass.

A measured ceiling (the GEMM rate a process reaches) can sit below what the hardware does, for instance while another
process shares the cores; the theoretical peak cannot. A point above it is a bug in a FLOP count or a timer, and the
analysis says so (analysis/roof.py).

CPU: cores x clock x FLOP per cycle. FLOP per cycle: fp32 lanes of the widest vector unit the CPU's flags announce
(avx512f: 16, avx2: 8, else sse: 4), x 2 for a fused multiply-add (fma, avx512f), x FMA_UNITS per core (an
assumption, recorded with the figure). The clock is the highest of what the system says (cpufreq's cpuinfo_max_freq,
the largest 'cpu MHz' in /proc/cpuinfo) and what a core is measured to run at (measured_clock_hz): under a
hypervisor 'cpu MHz' is the nominal clock, which a boosting core passes (a 2-core AMD EPYC VM reports 2.6 GHz and
runs at 4.26). GPU: the vendor's dense figure for the precision the process computes in (GPU_PEAKS).
"""
from __future__ import annotations

import ctypes
import mmap
import platform
import sys
import time
from pathlib import Path

FMA_UNITS = 2  # FMA pipes per core: two on current x86 server cores (Skylake-SP Gold/Platinum, Ice Lake, Zen 4/5)
FMA_ASSUMPTION = (f"{FMA_UNITS} FMA units per core (assumed, as on current x86 server cores; "
                  "one unit would halve this peak)")

# Vendor figures, dense (without 2:4 sparsity), FLOP/s, keyed by torch.cuda.get_device_name().
# NVIDIA H200 SXM: https://www.nvidia.com/en-us/data-center/h200/ lists FP32 67 TFLOPS and TF32 Tensor Core
# 989 TFLOPS "with sparsity"; dense is half, 494.7 TFLOPS, the figure of the NVIDIA H100 Tensor Core GPU Architecture
# whitepaper (H100 SXM5: FP32 66.9, TF32 494.7 dense), whose compute the H200 shares (same GH100 die and clocks).
H200_SOURCE = ("NVIDIA H200 product page, https://www.nvidia.com/en-us/data-center/h200/ (FP32 67 TFLOPS; TF32 "
               "Tensor Core 989 TFLOPS with sparsity, 494.7 dense per the NVIDIA H100 Tensor Core GPU Architecture "
               "whitepaper)")
GPU_PEAKS = {
    "NVIDIA H200": {"float32": 67.0e12, "tf32": 494.7e12, "source": H200_SOURCE},
    "NVIDIA H100 80GB HBM3": {"float32": 66.9e12, "tf32": 494.7e12,
                              "source": "NVIDIA H100 Tensor Core GPU Architecture whitepaper (H100 SXM5, dense)"},
}


def _cpuinfo(path: Path) -> tuple[set[str], float | None]:
    """The first processor's flags and the largest 'cpu MHz' of any processor, from /proc/cpuinfo."""
    flags, mhz = set(), []
    try:
        for line in Path(path).read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "flags" and not flags:
                flags = set(value.split())
            elif key.strip() == "cpu MHz":
                mhz.append(float(value))
    except (OSError, ValueError):
        pass
    return flags, max(mhz) if mhz else None


# x86-64 machine code of countdown(n): mov rax, rdi; 1: dec rax; jnz 1b; ret. Each decrement waits for the one
# before it (latency: one cycle), so the loop runs at most one iteration per cycle.
_COUNTDOWN = bytes.fromhex("4889f8" "48ffc8" "75fb" "c3")


def measured_clock_hz(iterations: int = 100_000_000, repeats: int = 3) -> float | None:
    """The clock one busy core runs at: iterations of a dependent countdown over the fastest of `repeats` runs
    (about 25 ms each at 4 GHz). A lower bound on the clock, and on a boosting CPU above what all cores sustain
    together, so the peak built from it is not too low. None off x86-64 Linux or where memory cannot be executable."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        return None
    try:
        page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except (OSError, ValueError):
        return None
    page.write(_COUNTDOWN)
    countdown = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_uint64)(ctypes.addressof(ctypes.c_char.from_buffer(page)))
    countdown(1000)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        countdown(iterations)
        best = min(best, time.perf_counter() - start)
    return iterations / best


def lanes(flags: set[str]) -> int:
    """fp32 lanes of the widest vector unit the flags announce."""
    return 16 if "avx512f" in flags else 8 if "avx2" in flags or "avx" in flags else 4


def cpu_peak(cores: int, cpuinfo: str | Path = "/proc/cpuinfo",
             cpufreq: str | Path = "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq",
             measured: float | None = None) -> dict:
    """The peak of `cores` cores, with every quantity it was computed from and where each was read. `measured`: the
    clock measured_clock_hz() found, if the caller measured it."""
    flags, mhz = _cpuinfo(Path(cpuinfo))
    clocks = {f"{cpuinfo} 'cpu MHz' (largest)": mhz * 1e6 if mhz else None, "measured (dependent countdown)": measured}
    try:
        clocks[str(cpufreq)] = int(Path(cpufreq).read_text()) * 1e3  # kHz
    except (OSError, ValueError):
        pass
    clocks = {source: hz for source, hz in clocks.items() if hz}
    source = max(clocks, key=clocks.get) if clocks else None
    clock = clocks.get(source)
    width = lanes(flags)
    fma = 2 if "fma" in flags or "avx512f" in flags else 1
    per_cycle = width * fma * FMA_UNITS
    return {"flops": cores * clock * per_cycle if clock else None, "device": "cpu", "cores": cores,
            "clock_hz": clock, "clock_source": source, "clocks_hz": clocks, "fp32_lanes": width, "fma": fma == 2,
            "fma_units": FMA_UNITS, "flops_per_cycle_per_core": per_cycle, "assumption": FMA_ASSUMPTION}


def gpu_peak(name: str | None, tf32: bool = False) -> dict:
    """The vendor's dense figure for `name` in TF32 (tensor cores) or plain fp32; flops None for a GPU not listed."""
    precision = "tf32" if tf32 else "float32"
    figures = GPU_PEAKS.get(name or "")
    if figures is None:
        return {"flops": None, "device": "cuda", "model": name, "precision": precision,
                "source": f"no vendor figure listed for {name!r} in convbench.peak.GPU_PEAKS"}
    return {"flops": figures[precision], "device": "cuda", "model": name, "precision": precision,
            "source": figures["source"]}


def theoretical_peak(device: str, cores: int, model: str | None = None, tf32: bool = False) -> dict:
    """The peak of what a process uses: `cores` CPU cores (its threads), or the GPU `model`."""
    return gpu_peak(model, tf32) if device == "cuda" else cpu_peak(cores, measured=measured_clock_hz())

"""The theoretical peak FLOP/s of the device a process times on: the roof no measurement may pass.

A measured ceiling (the GEMM rate a process reaches) can sit below what the hardware does, for instance while another
process shares the cores; the theoretical peak cannot. A point above it is a bug in a FLOP count or a timer, and the
analysis says so (analysis/roof.py).

CPU: cores x clock x FLOP per cycle. FLOP per cycle: fp32 lanes of the widest vector unit the CPU's flags announce
(avx512f: 16, avx2: 8, else sse: 4), x 2 for a fused multiply-add (fma, avx512f), x FMA_UNITS per core (an
assumption, recorded with the figure). The clock is cpufreq's cpuinfo_max_freq where the kernel exposes it (the
highest the core may run), else the largest 'cpu MHz' in /proc/cpuinfo (under a hypervisor often the nominal clock:
turbo may pass it). GPU: the vendor's dense figure for the precision the process computes in (GPU_PEAKS).
"""
from __future__ import annotations

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


def lanes(flags: set[str]) -> int:
    """fp32 lanes of the widest vector unit the flags announce."""
    return 16 if "avx512f" in flags else 8 if "avx2" in flags or "avx" in flags else 4


def cpu_peak(cores: int, cpuinfo: str | Path = "/proc/cpuinfo",
             cpufreq: str | Path = "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq") -> dict:
    """The peak of `cores` cores, with every quantity it was computed from and where each was read."""
    flags, mhz = _cpuinfo(Path(cpuinfo))
    try:
        clock, source = int(Path(cpufreq).read_text()) * 1e3, str(cpufreq)  # kHz
    except (OSError, ValueError):
        clock, source = (mhz * 1e6 if mhz else None), f"{cpuinfo} 'cpu MHz' (largest)"
    width = lanes(flags)
    fma = 2 if "fma" in flags or "avx512f" in flags else 1
    per_cycle = width * fma * FMA_UNITS
    return {"flops": cores * clock * per_cycle if clock else None, "device": "cpu", "cores": cores,
            "clock_hz": clock, "clock_source": source, "fp32_lanes": width, "fma": fma == 2,
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
    return gpu_peak(model, tf32) if device == "cuda" else cpu_peak(cores)

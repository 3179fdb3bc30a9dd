"""Why is torch.compile slower than eager on the CPU? The same training step of one network under eager and under
Inductor (with the Inductor options PyTorch documents for the CPU), timed phase by phase and profiled op by op.

    python benchmarks/compile_profile.py [--arch k3] [--rounds 5] [--repeats 5] [--top 8] [--variant default ...]

Prints, per variant: the forward and forward+backward medians (torch.utils.benchmark.Timer, blocked; the variants
take turns over the rounds, so that a drift of a shared machine hits all alike), the ops that took the most self CPU
time over a few profiled steps (torch.profiler) and the time of each group of ops, so that one can see which kernels Inductor
runs where eager runs oneDNN (mkldnn) convolutions, and what layout conversions it adds (Inductor's own C++ kernels are named
cpp_fused_<ops>, profiled one by one with torch._inductor.config.cpp.enable_kernel_profile, as PyTorch's tutorial
"Inductor CPU backend debugging and profiling" does). Variants:
  eager                      the model as it is
  default                    torch.compile(model): what the engine ran (Inductor's layout optimisation on)
  no-layout-opt              Inductor without its channels-last layout optimisation (layout_optimization=False)
  cpp-wrapper                Inductor's C++ wrapper (cpp_wrapper=True): the wrapper code in C++, not Python
  max-autotune               mode="max-autotune-no-cudagraphs"
  freezing-forward           freezing=True, forward only under no_grad (freezing is an inference-only option: it
                             folds the weights into constants, which a training step cannot do)
On 2 cores each compile takes 10-30 s; keep the variants few.
"""
import argparse
import time
from contextlib import nullcontext

import numpy as np
import torch
import torch.nn.functional as F
import torch.utils.benchmark as benchmark
import yaml
from torch.profiler import ProfilerActivity, profile

from convbench import config, data
from convbench.backends import torch_backend
from convbench.spec import init_weights

VARIANTS = {
    "eager": None,
    "default": {},
    "no-layout-opt": {"layout_optimization": False},
    "cpp-wrapper": {"cpp_wrapper": True},
    "max-autotune": {"mode": "max-autotune-no-cudagraphs"},
    "freezing-forward": {"freezing": True},
}


def module(model, variant: str):
    """The module a variant runs: the eager model, or torch.compile of it with the variant's Inductor options."""
    options = VARIANTS[variant]
    if options is None:
        return model
    from torch._inductor import config as inductor_config

    torch._dynamo.reset()
    inductor_config.compile_threads = 1  # as the engine does (torch_backend.compile_engine)
    inductor_config.cpp.enable_kernel_profile = True  # each generated C++ kernel as its own profiler event
    options = dict(options)
    mode = options.pop("mode", None)
    for key, value in {"layout_optimization": True, "cpp_wrapper": False, "freezing": False, **options}.items():
        setattr(inductor_config, key, value)
    return torch.compile(model, mode=mode)


GROUPS = {  # how the ops of a profile add up: the oneDNN convolutions both engines call, and the rest
    "oneDNN convolutions (aten::mkldnn_convolution, aten::convolution_backward)":
        lambda k: k in ("aten::mkldnn_convolution", "aten::convolution_backward") or k.startswith("mkldnn::"),
    "Inductor's generated C++ kernels (cpp_fused_*)": lambda k: "cpp_fused" in k,
    "max-pool backward as a scatter-add (aten::scatter_reduce_)": lambda k: k == "aten::scatter_reduce_",
    "ATen pooling, ReLU and their backward": lambda k: k.startswith("aten::") and any(
        w in k for w in ("max_pool2d", "clamp_min", "threshold_backward", "relu")),
}


def step_of(model, net, x, y, inference: bool):
    """(forward, forward+backward) callables of one variant."""
    grad = torch.no_grad() if inference else nullcontext()

    def forward():
        with grad:
            return F.cross_entropy(net(x), y)

    def step():
        forward().backward()
        model.zero_grad(set_to_none=True)

    return forward, step


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--arch", default="k3")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of timing, the variants taking turns")
    parser.add_argument("--repeats", type=int, default=5, help="steps in the profiled loop (few: 2 shared cores)")
    parser.add_argument("--top", type=int, default=8, help="ops listed per variant")
    parser.add_argument("--variant", action="append", choices=list(VARIANTS), help="repeatable; default: all")
    args = parser.parse_args()

    with open(args.config) as f:
        cell = next(c for c in config.check(yaml.safe_load(f)) if c.task == "speed" and c.arch.name == args.arch)
    torch_backend.configure(cell.threads)
    x, y = data.synthetic_batch(cell.batch_size, cell.arch.in_channels, cell.image_size, 10, 0)
    x, y = torch.from_numpy(x), torch.from_numpy(y).long()
    print(f"torch {torch.__version__}, {args.arch}, batch {cell.batch_size}, image {cell.image_size}, "
          f"{cell.threads} threads, mkldnn {torch.backends.mkldnn.is_available()}")
    programs = {}
    for variant in args.variant or list(VARIANTS):  # compile every variant first: the timing rounds take turns
        model = torch_backend.build(cell.arch, init_weights(cell.arch, 0))
        inference = variant == "freezing-forward"
        if inference:
            model.eval()
        forward, step = step_of(model, module(model, variant), x, y, inference)
        t0 = time.perf_counter()
        for _ in range(4):
            forward() if inference else step()
        print(f"{variant}: compiled and warmed in {time.perf_counter() - t0:.1f} s")
        programs[variant] = {"forward": forward} if inference else {"forward": forward, "forward+backward": step}
    times = {v: {name: [] for name in p} for v, p in programs.items()}
    for _ in range(args.rounds):  # a drift of the shared machine hits every variant alike
        for variant, fns in programs.items():
            for name, f in fns.items():
                timer = benchmark.Timer("f()", globals={"f": f}, num_threads=cell.threads)
                times[variant][name].append(timer.blocked_autorange(min_run_time=0.2).median)
    medians = {v: {n: float(np.median(t)) for n, t in ts.items()} for v, ts in times.items()}
    for variant, fns in programs.items():
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.repeats):
                fns["forward+backward" if "forward+backward" in fns else "forward"]()
        print(f"\n== {variant}: " + ", ".join(f"{n} {1e3 * t:.2f} ms" for n, t in medians[variant].items())
              + f" (median of {args.rounds} rounds)")
        events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in events)
        print(f"  {'op (self CPU time per profiled call)':58s} {'ms':>7s} {'share':>6s} {'calls':>6s}")
        for e in events[:args.top]:
            print(f"  {e.key[:58]:58s} {e.self_cpu_time_total / 1e3 / args.repeats:7.3f} "
                  f"{100 * e.self_cpu_time_total / total:5.1f}% {e.count // args.repeats:6d}")
        for group, member in GROUPS.items():
            t = sum(e.self_cpu_time_total for e in events if member(e.key))
            if t:
                print(f"  [{group}] {t / 1e3 / args.repeats:.3f} ms, {100 * t / total:.1f}%")
    if "eager" in medians:
        print("\nover eager (same rounds):")
        for variant, ts in medians.items():
            print(f"  {variant:18s} " + ", ".join(f"{n} {t / medians['eager'][n]:.2f}x" for n, t in ts.items()
                                                  if n in medians["eager"]))


if __name__ == "__main__":
    main()

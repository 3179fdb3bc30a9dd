"""Does the harness add overhead? Its whole-step median against torch.utils.benchmark.Timer's.

    python benchmarks/harness_overhead.py [--arch k5] [--rounds 5]

Both time the same PyTorch training step (forward, backward, SGD step) on the same batch.
Rounds alternate between the two so that drifts of the machine hit both alike. Target: 0.97-1.03.
"""
import argparse

import numpy as np
import torch
import torch.utils.benchmark as benchmark
import yaml

from convbench import config, data, timing
from convbench.backends import torch_backend
from convbench.spec import init_weights


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--arch", default="k5")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    with open(args.config) as f:
        settings = yaml.safe_load(f)
    cell = next(c for c in config.check(settings) if c.task == "speed" and c.framework == "torch" and c.arch.name == args.arch)
    torch_backend.configure(cell.threads)
    trainer = torch_backend.Trainer(cell.arch, init_weights(cell.arch, 0), 0.01, 0.9)
    x, y = trainer.to_device(*data.synthetic_batch(cell.batch_size, cell.arch.in_channels, cell.image_size, 10, 0))

    def step():
        trainer.forward(x, y)
        trainer.backward()
        trainer.optimizer_step()

    protocol = timing.Protocol(warmup=5, min_repeats=30, max_repeats=30, max_seconds=60)
    timer = benchmark.Timer(stmt="step()", globals={"step": step}, num_threads=cell.threads)
    ratios = []
    for i in range(args.rounds):
        harness = timing.time_step(step, trainer.sync, protocol).median
        reference = timer.blocked_autorange(min_run_time=2.0).median
        ratios.append(harness / reference)
        print(f"round {i + 1}: harness {harness * 1e3:.2f} ms, Timer {reference * 1e3:.2f} ms, ratio {ratios[-1]:.3f}")
    print(f"{args.arch}, batch {cell.batch_size}, {cell.threads} threads, torch {torch.__version__}: "
          f"median ratio harness/Timer = {np.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f})")


if __name__ == "__main__":
    main()

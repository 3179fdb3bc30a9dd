"""Does the harness add overhead? Its blocked whole-step median against torch.utils.benchmark.Timer and against
loops written here independently.

    python benchmarks/harness_overhead.py --framework torch [--arch k5] [--rounds 5] [--min-seconds 1]
    python benchmarks/harness_overhead.py --framework tensorflow

For every engine of the framework, the same training step (same network, weights, batch) is timed by convbench's
harness (timing.time_step on Trainer.step: blocks of back-to-back steps between two synchronisations, CUDA events on
a GPU), by torch.utils.benchmark.Timer's blocked_autorange on the very same Trainer.step (any Python callable; on a
GPU it synchronises torch's device only), and by a best-practice loop written here from the framework's own
documentation: a plain Python loop timed as a whole, ended by a synchronisation, divided by its steps. Rounds
alternate so that a drift of the machine hits all alike. Targets: harness/Timer within 0.97-1.03; within 10 %
against each engine's reference loop.
"""
import argparse
import time

import numpy as np
import yaml

from convbench import config, data, timing
from convbench.cells import ENGINES
from convbench.spec import init_weights


def reference_loop_torch(trainer, x, y, engine):
    """The loop a PyTorch user writes, on a fresh copy of the engine's module."""
    import torch
    import torch.nn.functional as F

    from convbench.backends import torch_backend

    net, _ = torch_backend.compile_engine(trainer.model, engine)
    optimizer = torch.optim.SGD(trainer.model.parameters(), lr=0.01, momentum=0.9)

    def run(steps):
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), y).backward()
            optimizer.step()

    return run


def reference_loop_tensorflow(trainer, x, y, engine):
    """The loop a TensorFlow user writes: a GradientTape step, under tf.function for graph engines."""
    import keras
    import tensorflow as tf

    model = trainer.model
    optimizer = keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    if engine != "eager":
        train_step = tf.function(train_step, jit_compile=engine == "xla")

    def run(steps):
        for _ in range(steps):
            loss = train_step(x, y)
        float(loss)  # wait for the last step

    return run


def per_step(run, steps: int, sync) -> float:
    run(3)  # warm-up, compilation
    sync()
    t0 = time.perf_counter()
    run(steps)
    sync()  # the loop is done when the device is, not when Python has queued its last step
    return (time.perf_counter() - t0) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--framework", choices=list(ENGINES), default="torch")
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--arch", default="k5")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30, help="steps of each reference loop")
    parser.add_argument("--engine", action="append", help="only this engine (repeatable); default: every engine")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="harness and Timer: measure at least this long")
    args = parser.parse_args()

    with open(args.config) as f:
        settings = yaml.safe_load(f)
    cell = next(c for c in config.check(settings) if c.task == "speed" and c.arch.name == args.arch)
    if args.framework == "torch":
        from convbench.backends import torch_backend as backend
        reference_loop = reference_loop_torch
    else:
        from convbench.backends import tf_backend as backend
        reference_loop = reference_loop_tensorflow
    backend.configure(cell.threads)
    x, y = data.synthetic_batch(cell.batch_size, cell.arch.in_channels, cell.image_size, 10, 0)
    protocol = timing.Protocol(warmup=3, min_repeats=10, max_repeats=50, min_seconds=args.min_seconds, max_seconds=60)
    import torch.utils.benchmark as benchmark

    print(f"{args.framework}, {args.arch}, batch {cell.batch_size}, {cell.threads} threads; "
          f"ratio = harness median / reference per step")
    for engine in ENGINES[args.framework]:
        if args.engine and engine not in args.engine:
            continue
        try:
            trainer = backend.Trainer(cell.arch, init_weights(cell.arch, 0), 0.01, 0.9, cell.device, engine)
        except ValueError as e:  # an engine this device lacks (CUDA graphs on a CPU)
            print(f"  {engine:12s} skipped: {e}")
            continue
        xs, ys = trainer.to_device(x, y)
        loop = reference_loop(trainer, xs, ys, engine)
        timer = benchmark.Timer(stmt="step()", globals={"step": lambda: trainer.step(xs, ys)}, num_threads=cell.threads)
        references = {"Timer": lambda: timer.blocked_autorange(min_run_time=args.min_seconds).median,
                      "loop": lambda: per_step(loop, args.steps, trainer.sync)}
        ratios = {name: [] for name in references}
        clock = getattr(trainer, "clock", None)
        for _ in range(args.rounds):
            harness = timing.time_step(lambda: trainer.step(xs, ys), trainer.sync, protocol, clock)
            for name, reference in references.items():
                ratios[name].append(harness.median / reference())
        for name, values in ratios.items():
            print(f"  {engine:12s} vs {name:6s}: median ratio {np.median(values):.3f} "
                  f"(rounds {min(values):.3f}-{max(values):.3f}; harness blocks of {harness.block} steps)")


if __name__ == "__main__":
    main()

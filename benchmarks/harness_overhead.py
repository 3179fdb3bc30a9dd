"""Does the harness add overhead? Its whole-step median against loops written here independently.

    python benchmarks/harness_overhead.py --framework torch [--arch k5] [--rounds 5]
    python benchmarks/harness_overhead.py --framework tensorflow

For every engine of the framework, the same training step (same network, weights, batch) is timed
by convbench's harness (timing.time_step on Trainer.step) and by a best-practice loop written here
from the framework's own documentation: a plain Python loop timed as a whole, divided by its steps.
PyTorch eager is also timed by torch.utils.benchmark.Timer. Rounds alternate between the two so
that a drift of the machine hits both alike. Targets: within 0.97-1.03 against Timer and the bare
tf.function loop; within 10% against each engine's reference loop.
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


def per_step(run, steps: int) -> float:
    run(3)  # warm-up, compilation
    t0 = time.perf_counter()
    run(steps)
    return (time.perf_counter() - t0) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--framework", choices=list(ENGINES), default="torch")
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--arch", default="k5")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
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
    protocol = timing.Protocol(warmup=3, min_repeats=args.steps, max_repeats=args.steps, max_seconds=60)

    print(f"{args.framework}, {args.arch}, batch {cell.batch_size}, {cell.threads} threads; "
          f"ratio = harness median / reference per step")
    for engine in ENGINES[args.framework]:
        trainer = backend.Trainer(cell.arch, init_weights(cell.arch, 0), 0.01, 0.9, cell.device, engine)
        xs, ys = trainer.to_device(x, y)
        references = {"loop": reference_loop(trainer, xs, ys, engine)}
        if args.framework == "torch" and engine == "eager":
            import torch.utils.benchmark as benchmark

            timer = benchmark.Timer(stmt="run(1)", globals={"run": references["loop"]}, num_threads=cell.threads)
            references["Timer"] = lambda steps: timer.blocked_autorange(min_run_time=1.0).median
        ratios = {name: [] for name in references}
        for _ in range(args.rounds):
            harness = timing.time_step(lambda: trainer.step(xs, ys), trainer.sync, protocol).median
            for name, run in references.items():
                reference = run(args.steps) if name == "Timer" else per_step(run, args.steps)
                ratios[name].append(harness / reference)
        for name, values in ratios.items():
            print(f"  {engine:12s} vs {name:6s}: median ratio {np.median(values):.3f} "
                  f"(rounds {min(values):.3f}-{max(values):.3f})")


if __name__ == "__main__":
    main()

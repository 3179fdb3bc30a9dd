"""TensorFlow on several devices: MirroredStrategy data parallel; DTensor tensor parallel where it runs.

One process. On the CPU it holds n logical devices (configure() must run before TensorFlow
initialises its runtime); on GPUs, the first n. MirroredStrategy mirrors the variables on every
device, runs one replica per device on its share of the global batch, and Keras's optimizer
all-reduces (sums) the gradients inside apply_gradients before it updates (keras/src/backend/
tensorflow/optimizer.py, _all_reduce_sum_gradients): each replica's loss is its share's summed
loss over the global batch size (tf.nn.compute_average_loss), so the sum is the global mean's.

On logical CPU devices the "communication" is copies within one process (cross_device_ops
ReductionToOneDevice); on GPUs MirroredStrategy picks NCCL's all-reduce.

Tensor parallel through DTensor (sharding every convolution's output channels over a mesh) does not
run in TensorFlow 2.21: DTensor's SPMD expander for Conv2D demands a fully replicated filter
("Filter for convolution must have fully replicated layout", conv_spmd_expander.cc). dtensor_probe()
tries it on the devices at hand and tensor_parallel() raises with the error it got.
"""
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from convbench.backends import tf_backend  # noqa: E402
from convbench.spec import ArchSpec  # noqa: E402


def configure(devices: int, threads: int, device: str = "cpu") -> list[str]:
    """Make `devices` devices (logical CPUs, or the first GPUs) and set the thread pools; before
    anything initialises TensorFlow's runtime. Returns the device names."""
    try:
        if device == "cuda":
            gpus = tf.config.list_physical_devices("GPU")
            if len(gpus) < devices:
                raise RuntimeError(f"{devices} GPUs requested, TensorFlow sees {len(gpus)}")
            names = [f"/GPU:{i}" for i in range(devices)]
        else:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
            names = [f"/CPU:{i}" for i in range(devices)]
        # One intra-op pool serves every logical CPU device; inter-op threads let the replicas run side by side.
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(devices)
    except RuntimeError as error:
        if "initialized" in str(error):
            raise RuntimeError("tf_parallel.configure must run before TensorFlow initialises its runtime (before "
                               f"any tensor is made in this process): {error}") from error
        raise
    return names


def _loss(model, x, y, global_batch: int):
    per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=model(x, training=True))
    return tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)


def _cast(weights: dict, dtype: str) -> dict:
    return {k: np.asarray(v, dtype=dtype) for k, v in weights.items()}


class MirroredTrainer:
    """A network mirrored on `devices`, its Keras SGD optimizer, and tf.function programs for the
    cumulative phases of a step (forward; forward + backward; whole step, whose apply_gradients
    all-reduces) and for the all-reduce alone.

    Inputs: the global batch in NCHW float with integer labels; replica i gets the i-th share."""

    framework = "tensorflow"
    phase_method = "derived"

    def __init__(self, spec: ArchSpec, weights, lr: float, momentum: float, devices: list[str],
                 global_batch: int, dtype: str = "float32", delays_s: list[float] | None = None):
        cross = tf.distribute.ReductionToOneDevice() if devices[0].startswith("/CPU") else None
        self.strategy = tf.distribute.MirroredStrategy(devices, cross_device_ops=cross)
        self.devices, self.global_batch, self.dtype = devices, global_batch, dtype
        self.traced_payload_bytes = None
        with self.strategy.scope():
            self.model = tf_backend.build(spec, _cast(weights, dtype))
            self.optimizer = keras.optimizers.SGD(learning_rate=lr, momentum=momentum)
            self.optimizer.build(self.model.trainable_variables)
        delays = list(delays_s or [0.0] * len(devices))
        self.straggling = any(delays)
        self.delays = self.strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(delays[ctx.replica_id_in_sync_group], tf.float64))
        program = tf.function(reduce_retracing=True)
        self.forward_program = program(lambda x, y: self.strategy.run(self._forward, (x, y, self.delays)))
        self.forward_backward_program = program(lambda x, y: self.strategy.run(self._forward_backward,
                                                                               (x, y, self.delays)))
        self.step_program = program(lambda x, y: self.strategy.run(self._step, (x, y, self.delays)))
        self.gradients_program = program(lambda x, y: self.strategy.run(self._reduced_gradients, (x, y)))
        self.all_reduce_program = program(lambda grads: self.strategy.run(self._all_reduce, (grads,)))

    # What one replica runs.
    def _delay(self, x, delay):
        """A straggler: the replica sleeps `delay` seconds before its forward (0 on every other replica).
        Left out of the programs altogether when no replica straggles."""
        if not self.straggling:
            return x
        slept = tf.py_function(lambda d: (time.sleep(float(d)) if d > 0 else None) or d, [delay], tf.float64)
        with tf.control_dependencies([slept]):
            return tf.identity(x)

    def _forward(self, x, y, delay):
        return _loss(self.model, self._delay(x, delay), y, self.global_batch)

    def _forward_backward(self, x, y, delay):
        with tf.GradientTape() as tape:
            loss = _loss(self.model, self._delay(x, delay), y, self.global_batch)
        return loss, tape.gradient(loss, self.model.trainable_variables)

    def _step(self, x, y, delay):
        loss, grads = self._forward_backward(x, y, delay)
        # The payload of the all-reduce, counted as the program is traced (the same for every replica).
        self.traced_payload_bytes = sum(g.shape.num_elements() * g.dtype.size for g in grads if g is not None)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))  # all-reduces, then updates
        return loss

    def _reduced_gradients(self, x, y):
        names, variables = zip(*tf_backend._named_variables(self.model).items())
        with tf.GradientTape() as tape:
            loss = _loss(self.model, x, y, self.global_batch)
        grads = tape.gradient(loss, list(variables))
        context = tf.distribute.get_replica_context()
        return context.all_reduce(tf.distribute.ReduceOp.SUM, loss), context.all_reduce(tf.distribute.ReduceOp.SUM, grads)

    @staticmethod
    def _all_reduce(grads):
        # identity: placed on the replica's device (one replica passes the inputs through unplaced,
        # and an all-reduce of unplaced tensors has no destination)
        grads = [tf.identity(g) for g in grads]
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)

    # From outside.
    def distribute(self, x: np.ndarray, y: np.ndarray):
        """The global batch split into the replicas' shares, each placed on its device (NHWC)."""
        n = len(self.devices)
        if len(x) % n:
            raise ValueError(f"data parallel over {n} devices needs a global batch divisible by {n}, got {len(x)}")
        share = len(x) // n
        x = x.astype(self.dtype).transpose(0, 2, 3, 1)

        def shard(ctx):
            i = ctx.replica_id_in_sync_group
            with tf.device(self.devices[i]):
                return tf.identity(x[i * share:(i + 1) * share]), tf.identity(y[i * share:(i + 1) * share])

        return self.strategy.experimental_distribute_values_from_function(shard)

    def phases(self, inputs) -> dict:
        x, y = inputs
        return {"forward": lambda: self.forward_program(x, y),
                "forward_backward": lambda: self.forward_backward_program(x, y),
                "step": lambda: self.step_program(x, y)}

    def step(self, inputs):
        return self.step_program(*inputs)

    def sync(self) -> None:
        if not self.devices[0].startswith("/CPU"):
            tf.test.experimental.sync_devices()

    def gradient_buffers(self):
        """Per-replica tensors shaped like the gradients: what the all-reduce alone is timed on."""
        return self.strategy.experimental_distribute_values_from_function(
            lambda ctx: [tf.zeros(v.shape, v.dtype) for v in self.model.trainable_variables])

    def gradients(self, inputs) -> dict[str, np.ndarray]:
        """The all-reduced gradients of the global batch's mean loss, in neutral names and layouts."""
        loss, grads = self.gradients_program(*inputs)
        names = list(tf_backend._named_variables(self.model))
        first = self.strategy.experimental_local_results
        named = {name: tf_backend._from_tf(first(g)[0].numpy()) for name, g in zip(names, grads)}
        named["loss"] = first(loss)[0].numpy()
        return named

    def weights(self) -> dict[str, np.ndarray]:
        return tf_backend.export_weights(self.model)


class AloneTrainers:
    """The no-communication baseline: one independent network and optimizer per device, each on its
    share of the batch, all in one tf.function so that they run side by side."""

    phase_method = "derived"

    def __init__(self, spec: ArchSpec, weights, lr: float, momentum: float, devices: list[str],
                 global_batch: int, dtype: str = "float32"):
        self.devices, self.dtype, self.models, self.optimizers = devices, dtype, [], []
        self.share = global_batch // len(devices)
        for device in devices:
            with tf.device(device):
                model = tf_backend.build(spec, _cast(weights, dtype))
                optimizer = keras.optimizers.SGD(learning_rate=lr, momentum=momentum)
                optimizer.build(model.trainable_variables)
            self.models.append(model)
            self.optimizers.append(optimizer)
        program = tf.function(reduce_retracing=True)
        self.forward_program = program(lambda xs, ys: self._all(xs, ys, "forward"))
        self.forward_backward_program = program(lambda xs, ys: self._all(xs, ys, "forward_backward"))
        self.step_program = program(lambda xs, ys: self._all(xs, ys, "step"))

    def _all(self, xs, ys, upto: str):
        out = []
        for device, model, optimizer, x, y in zip(self.devices, self.models, self.optimizers, xs, ys):
            with tf.device(device):
                with tf.GradientTape() as tape:
                    loss = _loss(model, x, y, self.share)
                if upto == "forward":
                    out.append(loss)
                    continue
                grads = tape.gradient(loss, model.trainable_variables)
                if upto == "step":
                    optimizer.apply_gradients(zip(grads, model.trainable_variables))
                out.append(loss if upto == "step" else grads)
        return out

    def distribute(self, x: np.ndarray, y: np.ndarray):
        x = x.astype(self.dtype).transpose(0, 2, 3, 1)
        xs, ys = [], []
        for i, device in enumerate(self.devices):
            with tf.device(device):
                xs.append(tf.identity(x[i * self.share:(i + 1) * self.share]))
                ys.append(tf.identity(y[i * self.share:(i + 1) * self.share]))
        return xs, ys

    def phases(self, inputs) -> dict:
        xs, ys = inputs
        return {"forward": lambda: self.forward_program(xs, ys),
                "forward_backward": lambda: self.forward_backward_program(xs, ys),
                "step": lambda: self.step_program(xs, ys)}

    def step(self, inputs):
        return self.step_program(*inputs)

    def sync(self) -> None:
        if not self.devices[0].startswith("/CPU"):
            tf.test.experimental.sync_devices()


def dtensor_probe(devices: list[str]) -> dict:
    """Shard a convolution's filters over a DTensor mesh of `devices` (output channels, HWIO's last
    dimension) and run it forward and backward. Returns the layouts it got; raises what TF raised."""
    from tensorflow.experimental import dtensor

    mesh = dtensor.create_mesh([("model", len(devices))], devices=[d.lstrip("/") for d in devices])
    replicated = dtensor.Layout.replicated(mesh, 4)
    sharded = dtensor.Layout([dtensor.UNSHARDED] * 3 + ["model"], mesh)
    x = dtensor.copy_to_mesh(tf.ones((2, 8, 8, 3)), replicated)
    kernel = dtensor.DVariable(dtensor.relayout(dtensor.copy_to_mesh(tf.ones((3, 3, 3, 2 * len(devices))),
                                                                     replicated), sharded))
    with tf.GradientTape() as tape:
        y = tf.nn.conv2d(x, kernel, 1, "SAME")
        loss = tf.reduce_sum(y)
    grad = tape.gradient(loss, kernel)
    return {"output": dtensor.fetch_layout(y).to_string(), "kernel_grad": dtensor.fetch_layout(grad).to_string()}


_PROBED: dict[tuple[str, ...], Exception | dict] = {}


def tensor_parallel(devices: list[str]):
    """Tensor parallel in TensorFlow: DTensor with every convolution's output channels sharded.
    It does not run in TF 2.21; this raises NotImplementedError with the error DTensor gives.

    The probe runs once per process and set of devices: DTensor keeps state between attempts, and a
    second attempt on the same mesh fails with a different, misleading error."""
    key = tuple(devices)
    if key not in _PROBED:
        try:
            _PROBED[key] = dtensor_probe(devices)
        except Exception as error:
            _PROBED[key] = error
    outcome = _PROBED[key]
    if isinstance(outcome, Exception):
        text = str(outcome).strip()
        summary = next((line.split("): ", 1)[-1] for line in text.splitlines() if "error:" in line), text.splitlines()[0])
        raise NotImplementedError(
            f"DTensor tensor parallel does not run in TensorFlow {tf.__version__}; sharding a Conv2D filter's output "
            f"channels over a mesh of {len(devices)} devices fails with {type(outcome).__name__}:\n{text}\n"
            f"In short: {summary}") from outcome
    raise NotImplementedError(f"DTensor ran a convolution with sharded filters in TensorFlow {tf.__version__} "
                              f"(layouts {outcome}), but convbench's DTensor trainer is not built yet")

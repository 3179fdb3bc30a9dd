"""TensorFlow on several devices: MirroredStrategy data parallel; tensor parallel built by hand.

One process. On the CPU it holds n logical devices (configure() must run before TensorFlow
initialises its runtime); on GPUs, the first n. MirroredStrategy mirrors the variables on every
device, runs one replica per device on its share of the global batch, and Keras's optimizer
all-reduces (sums) the gradients inside apply_gradients before it updates (keras/src/backend/
tensorflow/optimizer.py, _all_reduce_sum_gradients): each replica's loss is its share's summed
loss over the global batch size (tf.nn.compute_average_loss), so the sum is the global mean's.

On logical CPU devices the "communication" is copies within one process (cross_device_ops
ReductionToOneDevice); on GPUs MirroredStrategy picks NCCL's all-reduce.

Across processes (several nodes) the same trainers run under MultiWorkerMirroredStrategy, one
process per node holding its local devices (convbench.parallel.tf_worker --nodes): its replica ids
run over all processes, and its collectives go between them (gRPC on the CPU, NCCL between GPUs).

Tensor parallel (TensorParallelTrainer) splits the filters by hand, as PyTorch's does: DTensor, which
would shard every convolution's output channels over a mesh, does not run in TensorFlow 2.21, whose
SPMD expander for Conv2D demands a fully replicated filter ("Filter for convolution must have fully
replicated layout", conv_spmd_expander.cc); dtensor_probe() shows it on the devices at hand.
"""
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from convbench.backends import tf_backend  # noqa: E402
from convbench.parallel import split  # noqa: E402
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


def multi_worker() -> tf.distribute.MultiWorkerMirroredStrategy:
    """Several processes (one per node), the cluster read from TF_CONFIG; after configure(), before any tensor."""
    return tf.distribute.MultiWorkerMirroredStrategy()


def _mean_loss(logits, y):
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))


def _cast(weights: dict, dtype: str) -> dict:
    return {k: np.asarray(v, dtype=dtype) for k, v in weights.items()}


def _mirrored(devices: list[str]) -> tf.distribute.MirroredStrategy:
    """One process's devices; on logical CPU devices the "all-reduce" is copies (ReductionToOneDevice)."""
    cross = tf.distribute.ReductionToOneDevice() if devices[0].startswith("/CPU") else None
    return tf.distribute.MirroredStrategy(devices, cross_device_ops=cross)


def _local_replicas(strategy: tf.distribute.Strategy) -> list[tuple[int, str]]:
    """(replica id in the sync group, device) of this process's replicas: all of them under
    MirroredStrategy, this worker's under MultiWorkerMirroredStrategy."""
    ids = strategy.experimental_local_results(
        tf.function(lambda: strategy.run(lambda: tf.distribute.get_replica_context().replica_id_in_sync_group))())
    return [(int(i), device) for i, device in zip(ids, strategy.extended.worker_devices)]


def _sleep_first(x, delay_s: float):
    """A straggler: sleep `delay_s` seconds before x is used (nothing added when it is 0)."""
    if not delay_s:
        return x
    slept = tf.py_function(lambda: time.sleep(delay_s) or 0.0, [], tf.float64)
    with tf.control_dependencies([slept]):
        return tf.identity(x)


def _on_gpu(devices: list[str]) -> bool:
    return any("GPU" in d.upper() for d in devices)


class _Programs:
    """What every trainer here gives the harness: its three cumulative tf.function programs (forward; forward +
    backward; the whole step) as phases to time, the step alone, and a device sync."""

    framework = "tensorflow"
    phase_method = "derived"

    def phases(self, inputs) -> dict:
        x, y = inputs
        return {"forward": lambda: self.forward_program(x, y),
                "forward_backward": lambda: self.forward_backward_program(x, y),
                "step": lambda: self.step_program(x, y)}

    def step(self, inputs):
        return self.step_program(*inputs)

    def sync(self) -> None:
        if _on_gpu(self.devices):
            tf.test.experimental.sync_devices()


class MirroredTrainer(_Programs):
    """A network mirrored on `devices`, its Keras SGD optimizer, and tf.function programs for the
    cumulative phases of a step (forward; forward + backward; whole step, whose apply_gradients
    all-reduces) and for the all-reduce alone.

    Inputs: the global batch in NCHW float with integer labels; replica i gets the i-th share.
    strategy: MultiWorkerMirroredStrategy across processes (devices: this process's); by default a
    MirroredStrategy over `devices`."""

    def __init__(self, spec: ArchSpec, weights, lr: float, momentum: float, devices: list[str],
                 global_batch: int, dtype: str = "float32", delays_s: list[float] | None = None,
                 strategy: tf.distribute.Strategy | None = None):
        self.strategy = strategy or _mirrored(devices)
        self.devices, self.global_batch, self.dtype = devices, global_batch, dtype
        self.traced_payload_bytes = None
        with self.strategy.scope():
            self.model = tf_backend.build(spec, _cast(weights, dtype))
            self.optimizer = keras.optimizers.SGD(learning_rate=lr, momentum=momentum)
            self.optimizer.build(self.model.trainable_variables)
        delays = list(delays_s or [0.0] * self.strategy.num_replicas_in_sync)
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
        n = self.strategy.num_replicas_in_sync
        if len(x) % n:
            raise ValueError(f"data parallel over {n} devices needs a global batch divisible by {n}, got {len(x)}")
        share = len(x) // n
        x = x.astype(self.dtype).transpose(0, 2, 3, 1)

        def shard(ctx):
            i = ctx.replica_id_in_sync_group
            with tf.device(self.devices[i % len(self.devices)]):  # ids run over all processes
                return tf.identity(x[i * share:(i + 1) * share]), tf.identity(y[i * share:(i + 1) * share])

        return self.strategy.experimental_distribute_values_from_function(shard)

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


class AloneTrainers(_Programs):
    """The no-communication baseline: one independent network and optimizer per device, each on its
    share of the batch, all in one tf.function so that they run side by side."""

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



class TensorParallelTrainer(_Programs):
    """Tensor parallel by hand, as torch_parallel's TensorParallelConvNet: replica r holds the slice
    split.filter_slice gives it of every convolution's filters and split.feature_slice of the
    classifier's inputs, as plain variables on its own device; the classifier's bias lives on replica 0.
    Each replica runs its filters on the whole batch and the replica context's collectives join the
    pieces: ReplicaContext.all_gather of the maps along channels (in replica order, so in the spec's
    order) before every convolution but the first, and all_reduce of the partial logits.

    Those collectives carry gradients (tf.distribute's all_gather: an all-reduce of the gradient, then
    the replica's slice; all_reduce: an all-reduce), which differentiate the sum of every replica's
    loss: the loss is the same on every replica, so each backpropagates loss / t (as PyTorch's).
    Each replica updates only its own slices, with Keras SGD's rule (m = momentum m - lr g; w += m),
    written out: Keras's optimizers all-reduce the gradients under a strategy, which would sum
    different replicas' slices.

    communicate=False: the no-communication baseline, the same shapes and FLOPs with local copies in
    place of the gathers. Inputs: the whole global batch on every replica."""

    def __init__(self, spec: ArchSpec, weights, lr: float, momentum: float, devices: list[str], global_batch: int,
                 dtype: str = "float32", delays_s: list[float] | None = None, communicate: bool = True,
                 strategy: tf.distribute.Strategy | None = None):
        self.strategy = strategy or _mirrored(devices)
        self.world = self.strategy.num_replicas_in_sync
        split.check_tensor_parallel(spec, self.world)
        self.spec, self.devices, self.dtype, self.communicate = spec, devices, dtype, communicate
        self.lr, self.momentum, self.delays = lr, momentum, list(delays_s or [0.0] * self.world)
        self.loss_scale = 1.0 / self.world if communicate else 1.0
        self.calls: list[tuple[str, tuple, str]] = []  # (op, full shape, phase): one replica's step, as traced
        self._log: list | None = None
        full = _cast(weights, dtype)
        self.params = {}  # replica id -> its slices (neutral names, TensorFlow layouts), on its device
        for replica, device in _local_replicas(self.strategy):
            with tf.device(device):
                self.params[replica] = {name: tf.Variable(value) for name, value in self._slices(full, replica).items()}
                self.params[replica].update({f"{name}.velocity": tf.Variable(tf.zeros_like(value))
                                             for name, value in list(self.params[replica].items())})
        program = tf.function(reduce_retracing=True)
        self.forward_program = program(lambda x, y: self.strategy.run(self._forward, (x, y)))
        self.forward_backward_program = program(lambda x, y: self.strategy.run(self._forward_backward, (x, y)))
        self.step_program = program(lambda x, y: self.strategy.run(self._step, (x, y)))

    def _slices(self, full: dict, replica: int) -> dict:
        """Replica's part of the full neutral weights, in TensorFlow layouts (HWIO; in x out)."""
        part = {}
        for conv in self.spec.convs():
            block = self.spec.blocks[conv.block]
            index = split.filter_slice(block.width, block.pieces, replica, self.world)
            part[f"{conv.name}.weight"] = tf_backend._to_tf(full[f"{conv.name}.weight"][index])
            part[f"{conv.name}.bias"] = full[f"{conv.name}.bias"][index]
        features = split.feature_slice(self.spec, replica, self.world)
        part["head.weight"] = tf_backend._to_tf(full["head.weight"][:, features])
        if replica == 0:
            part["head.bias"] = full["head.bias"]
        return part

    # What one replica runs.
    def _replica(self) -> tuple[int, dict]:
        """This replica's id (static: MirroredStrategy traces the function once per replica) and slices."""
        replica = int(tf.get_static_value(tf.distribute.get_replica_context().replica_id_in_sync_group))
        return replica, self.params[replica]

    def _gather(self, x):
        if not self.communicate:
            return tf.concat([x] * self.world, axis=-1)
        out = tf.distribute.get_replica_context().all_gather(x, axis=3)  # channels (MWMS wants axis >= 0)
        full = (*x.shape[:-1], x.shape[-1] * self.world)
        out.set_shape(full)  # MultiWorkerMirroredStrategy's all_gather leaves the shape unknown
        self._note(("all_gather", full, "forward"), ("all_reduce", full, "backward"))
        return out

    def _reduce(self, logits):
        if not self.communicate:
            return logits
        self._note(*[("all_reduce", tuple(logits.shape), phase) for phase in ("forward", "backward")])
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, logits)

    def _note(self, *calls) -> None:
        if self._log is not None and self._replica()[0] == min(self.params):
            self._log += calls

    def _logits(self, replica: int, p: dict, x):
        x = _sleep_first(x, self.delays[replica] if self.communicate else 0.0)
        convs = self.spec.convs()
        for i, conv in enumerate(convs):
            block = self.spec.blocks[conv.block]
            x = tf.nn.bias_add(tf.nn.conv2d(x, p[f"{conv.name}.weight"], 1, "SAME"), p[f"{conv.name}.bias"])
            x = tf.nn.relu(x) if block.activation == "relu" else tf_backend.maxout(x, block.pieces)
            last = i + 1 == len(convs)
            if (last or convs[i + 1].block != conv.block) and block.pool > 1:
                x = tf.nn.max_pool2d(x, block.pool, block.pool, "VALID")  # per map: before the gather
            if not last:
                x = self._gather(x)
        logits = tf.matmul(tf.reduce_mean(x, axis=(1, 2)), p["head.weight"])
        return self._reduce(logits + p["head.bias"] if "head.bias" in p else logits)

    def _trainable(self, p: dict) -> list[str]:
        return [name for name in p if not name.endswith(".velocity")]

    def _placeholder(self):
        """The gradient of the classifier's bias on replicas that hold none: zeros, so that every replica
        returns the same structure (strategy.run requires it)."""
        return tf.zeros((self.spec.num_classes,), self.dtype)

    def _forward(self, x, y):
        replica, p = self._replica()
        return _mean_loss(self._logits(replica, p, x), y)

    def _forward_backward(self, x, y):
        replica, p = self._replica()
        names = self._trainable(p)
        with tf.GradientTape() as tape:
            loss = _mean_loss(self._logits(replica, p, x), y)
            scaled = loss * self.loss_scale
        grads = dict(zip(names, tape.gradient(scaled, [p[n] for n in names])))
        return loss, {"head.bias": self._placeholder(), **grads}

    def _step(self, x, y):
        replica, p = self._replica()
        if replica == min(self.params):  # count one replica's collectives, as the step is traced
            self._log = self.calls = []
        loss, grads = self._forward_backward(x, y)
        self._log = None
        for name, grad in grads.items():
            if name not in p:  # the placeholder
                continue
            velocity = p[f"{name}.velocity"]
            velocity.assign(self.momentum * velocity - self.lr * grad)
            p[name].assign_add(velocity)
        return loss

    # From outside.
    def distribute(self, x: np.ndarray, y: np.ndarray):
        """The whole global batch on every replica's device (NHWC)."""
        x = x.astype(self.dtype).transpose(0, 2, 3, 1)
        return self.strategy.experimental_distribute_values_from_function(lambda ctx: (tf.identity(x), tf.identity(y)))

    def payload_bytes(self) -> int:
        """The full tensors of one step's collectives, as the step program was traced."""
        return sum(int(np.prod(shape)) * np.dtype(self.dtype).itemsize for _, shape, _ in self.calls)

    def communication_program(self):
        """The step's collectives alone, on zero buffers of the same sizes: gathers of each replica's
        share and all-reduces of the full tensors, as traced."""
        calls = list(self.calls)

        def run():
            context = tf.distribute.get_replica_context()
            out = []
            for op, shape, _ in calls:
                if op == "all_gather":
                    out.append(context.all_gather(tf.zeros((*shape[:-1], shape[-1] // self.world), self.dtype), 3))
                else:
                    out.append(context.all_reduce(tf.distribute.ReduceOp.SUM, tf.zeros(shape, self.dtype)))
            return out
        program = tf.function(lambda: self.strategy.run(run))
        return lambda: program()

    def gradient_parts(self, inputs) -> tuple[float, dict[int, dict[str, np.ndarray]]]:
        """The loss, and this process's replicas' gradients of the global batch's mean loss (their
        slices, neutral layouts), by replica id: split.assemble puts every replica's together."""
        loss, grads = self.forward_backward_program(*inputs)
        flat = [self.strategy.experimental_local_results(g) for g in tf.nest.flatten(grads)]
        parts = {}
        for i, replica in enumerate(self.params):
            part = tf.nest.pack_sequence_as(grads, [g[i] for g in flat])
            parts[replica] = {n: tf_backend._from_tf(g.numpy()) for n, g in part.items() if n in self.params[replica]}
        return self.strategy.experimental_local_results(loss)[0].numpy(), parts

    def gradients(self, inputs) -> dict[str, np.ndarray]:
        """The gradients in the full neutral layout (every replica in this process: MirroredStrategy)."""
        loss, parts = self.gradient_parts(inputs)
        return {**split.assemble(self.spec, parts, self.world), "loss": loss}

    def weights(self) -> dict[str, np.ndarray]:
        return split.assemble(self.spec, {r: {n: tf_backend._from_tf(v.numpy()) for n, v in p.items()}
                                          for r, p in self.params.items()}, self.world)


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

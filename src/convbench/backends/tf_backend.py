"""TensorFlow (Keras 3): build a spec, load neutral weights, and expose the phases of a training step.

TensorFlow's convolutions on the CPU want NHWC, so this backend works in NHWC and
converts at its edges: inputs NCHW -> NHWC, kernels OIHW -> HWIO, linear out x in -> in x out.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from convbench.spec import ArchSpec  # noqa: E402

NAME = "tensorflow"
LAYOUT = "NHWC"


class Maxout(keras.layers.Layer):
    """Max over `pieces` contiguous channel slabs (see convbench.spec for the convention)."""

    def __init__(self, pieces: int, **kwargs):
        super().__init__(**kwargs)
        self.pieces = pieces

    def call(self, x):
        channels = x.shape[-1]
        shape = tf.concat([tf.shape(x)[:-1], [self.pieces, channels // self.pieces]], axis=0)
        return tf.reduce_max(tf.reshape(x, shape), axis=-2)


class ConvNet(keras.Model):
    def __init__(self, spec: ArchSpec):
        super().__init__()
        self.spec = spec
        self.convs = [
            keras.layers.Conv2D(c.out_channels, c.kernel, padding="same", name=c.name.replace(".", "_"))
            for c in spec.convs()
        ]
        self.activations = [keras.layers.ReLU() if b.activation == "relu" else Maxout(b.pieces) for b in spec.blocks]
        self.pools = [keras.layers.MaxPooling2D(b.pool) if b.pool > 1 else None for b in spec.blocks]
        self.head = keras.layers.Dense(spec.num_classes, name="head")

    def call(self, x):
        convs = iter(self.convs)
        for block, activation, pool in zip(self.spec.blocks, self.activations, self.pools):
            for _ in range(block.depth):
                x = activation(next(convs)(x))
            if pool is not None:
                x = pool(x)
        return self.head(tf.reduce_mean(x, axis=(1, 2)))


def _to_tf(value: np.ndarray) -> np.ndarray:
    if value.ndim == 4:  # conv kernel OIHW -> HWIO
        return value.transpose(2, 3, 1, 0)
    if value.ndim == 2:  # linear out x in -> in x out
        return value.T
    return value


def _from_tf(value: np.ndarray) -> np.ndarray:
    if value.ndim == 4:
        return value.transpose(3, 2, 0, 1)
    if value.ndim == 2:
        return value.T
    return value


def _named_variables(model: ConvNet) -> dict[str, tf.Variable]:
    """The model's variables under the neutral (PyTorch) names."""
    named = {}
    for conv, layer in zip(model.spec.convs(), model.convs):
        named[f"{conv.name}.weight"], named[f"{conv.name}.bias"] = layer.kernel, layer.bias
    named["head.weight"], named["head.bias"] = model.head.kernel, model.head.bias
    return named


def build(spec: ArchSpec, weights: dict[str, np.ndarray]) -> ConvNet:
    model = ConvNet(spec)
    size = int(np.prod([b.pool for b in spec.blocks]))
    model(tf.zeros((1, size, size, spec.in_channels)))  # creates the variables
    variables = _named_variables(model)
    if set(variables) != set(weights):
        raise ValueError(f"weights do not match spec {spec.name}: {sorted(set(variables) ^ set(weights))}")
    for name, variable in variables.items():
        variable.assign(_to_tf(np.asarray(weights[name])))
    return model


def export_weights(model: ConvNet) -> dict[str, np.ndarray]:
    return {name: _from_tf(v.numpy()) for name, v in _named_variables(model).items()}


def configure(threads: int) -> None:
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # the runtime is already initialised in this process
        if tf.config.threading.get_intra_op_parallelism_threads() != threads:
            raise


def _device_name(kind: str) -> str:
    if kind == "cuda":
        if not tf.config.list_physical_devices("GPU"):
            raise RuntimeError("device 'cuda' requested but TensorFlow sees no GPU")
        return "/GPU:0"
    return "/CPU:0"


def environment(device: str) -> dict:
    env = {
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
        "threads": {
            "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        },
        "flags": {
            "layout": LAYOUT,
            "xla_auto_jit": bool(tf.config.optimizer.get_jit()),
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
        },
    }
    if device == "cuda":
        details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
        env["device_model"] = details.get("device_name", "unknown GPU")
        env["flags"]["tf32"] = tf.config.experimental.tensor_float_32_execution_enabled()
    return env


class Trainer:
    """One network, its SGD optimizer and loss, on one device; the phases of a training step."""

    framework = NAME

    def __init__(self, spec: ArchSpec, weights, lr: float, momentum: float, device: str = "cpu"):
        self.device = _device_name(device)
        with tf.device(self.device):
            self.model = build(spec, weights)
            self.optimizer = keras.optimizers.SGD(learning_rate=lr, momentum=momentum)
            self.optimizer.build(self.model.trainable_variables)
        self._tape = self._loss = self._grads = None

    def to_device(self, x: np.ndarray, y: np.ndarray):
        """Inputs given in NCHW float32 with integer labels; returned NHWC on the device."""
        with tf.device(self.device):
            return tf.identity(x.transpose(0, 2, 3, 1)), tf.identity(y.astype(np.int64))

    def num_params(self) -> int:
        return int(sum(np.prod(v.shape) for v in self.model.trainable_variables))

    def sync(self) -> None:
        if self.device != "/CPU:0":
            tf.test.experimental.sync_devices()

    @staticmethod
    def _loss_fn(logits, y):
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))

    # The three phases of a training step, timed one by one by convbench.timing.
    def forward(self, x, y):
        with tf.device(self.device), tf.GradientTape() as tape:
            self._loss = self._loss_fn(self.model(x, training=True), y)
        self._tape = tape

    def backward(self):
        with tf.device(self.device):
            self._grads = self._tape.gradient(self._loss, self.model.trainable_variables)

    def optimizer_step(self):
        with tf.device(self.device):
            self.optimizer.apply_gradients(zip(self._grads, self.model.trainable_variables))

    def train_step(self, x, y) -> float:
        self.forward(x, y)
        self.backward()
        self.optimizer_step()
        return float(self._loss)

    def evaluate(self, x, y) -> tuple[float, float]:
        with tf.device(self.device):
            logits = self.model(x, training=False)
            loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
            correct = tf.reduce_sum(tf.cast(tf.argmax(logits, axis=1) == y, tf.int64))
        return float(loss), int(correct)

    def gradients(self, x, y) -> dict[str, np.ndarray]:
        """Loss gradients w.r.t. every weight and the input, in neutral names and layouts."""
        variables = _named_variables(self.model)
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = self._loss_fn(self.model(x, training=True), y)
        grads = tape.gradient(loss, [x, *variables.values()])
        named = {name: _from_tf(g.numpy()) for name, g in zip(variables, grads[1:])}
        named["input"] = grads[0].numpy().transpose(0, 3, 1, 2)
        return named

    def logits(self, x) -> np.ndarray:
        return self.model(x, training=False).numpy()

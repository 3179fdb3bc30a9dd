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

from convbench import cells, learned  # noqa: E402
from convbench.backends.tf_learned import L0Gate, MaskedConv2D  # noqa: E402
from convbench.spec import ArchSpec  # noqa: E402

NAME = "tensorflow"
LAYOUT = "NHWC"
ENGINES = cells.ENGINES[NAME]  # what each is: convbench.cells.ENGINES


def maxout(x, pieces: int):
    """Max over `pieces` contiguous channel slabs (see convbench.spec for the convention)."""
    channels = x.shape[-1]
    shape = tf.concat([tf.shape(x)[:-1], [pieces, channels // pieces]], axis=0)
    return tf.reduce_max(tf.reshape(x, shape), axis=-2)


class Maxout(keras.layers.Layer):
    def __init__(self, pieces: int, **kwargs):
        super().__init__(**kwargs)
        self.pieces = pieces

    def call(self, x):
        return maxout(x, self.pieces)


class ConvNet(keras.Model):
    def __init__(self, spec: ArchSpec):
        super().__init__()
        self.spec = spec
        self.convs = [self._conv(c, spec.blocks[c.block]) for c in spec.convs()]
        self.activations = [keras.layers.ReLU() if b.activation == "relu" else Maxout(b.pieces) for b in spec.blocks]
        # Learned blocks have depth 1 (spec), so one gate follows their one convolution.
        self.gates = [L0Gate(b.out_channels, b.init_log_alpha, name=f"blocks_{i}_gate") if b.gates else None
                      for i, b in enumerate(spec.blocks)]
        self.pools = [keras.layers.MaxPooling2D(b.pool) if b.pool > 1 else None for b in spec.blocks]
        self.head = keras.layers.Dense(spec.num_classes, name="head")
        # read here, not in the traced loss: autograph cannot convert the spec's methods
        self.radius_penalties = [spec.blocks[c.block].radius_penalty for c in spec.convs()]

    @staticmethod
    def _conv(conv, block):
        name = conv.name.replace(".", "_")
        if block.init_radius is None:
            return keras.layers.Conv2D(conv.out_channels, conv.kernel, padding="same", name=name)
        return MaskedConv2D(conv.out_channels, conv.kernel, block.init_radius, name=name)

    def call(self, x, training=False):
        convs = iter(self.convs)
        for block, activation, gate, pool in zip(self.spec.blocks, self.activations, self.gates, self.pools):
            for _ in range(block.depth):
                x = activation(next(convs)(x))
            if gate is not None:
                x = gate(x, training=training)
            if pool is not None:
                x = pool(x)
        return self.head(tf.reduce_mean(x, axis=(1, 2)))

    def penalties(self):
        """(radius term, L0 term), before the trainer's weights: the radii x radius_penalty and the expected numbers
        of open gates x l0_penalty."""
        radius = [weight * layer.penalty() for weight, layer in zip(self.radius_penalties, self.convs)
                  if isinstance(layer, MaskedConv2D)]
        gates = [block.l0_penalty * gate.penalty() for block, gate in zip(self.spec.blocks, self.gates)
                 if gate is not None]
        return tuple(tf.add_n(terms) if terms else 0.0 for terms in (radius, gates))


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
        if isinstance(layer, MaskedConv2D):
            named[f"{conv.name}.log_radius"] = layer.log_radius
    for i, gate in enumerate(model.gates):
        if gate is not None:
            named[f"blocks.{i}.gate.log_alpha"] = gate.log_alpha
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


def configure(threads: int, cudnn_benchmark: bool = True, tf32: bool = False) -> None:
    """Threads (intra-op; inter-op 1) and the TF32 policy. TensorFlow autotunes cuDNN convolutions by
    itself (TF_CUDNN_USE_AUTOTUNE, on by default), so cudnn_benchmark is only recorded."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # the runtime is already initialised in this process
        if tf.config.threading.get_intra_op_parallelism_threads() != threads:
            raise
    tf.config.experimental.enable_tensor_float_32_execution(tf32)


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
        env["flags"]["cudnn_autotune"] = os.environ.get("TF_CUDNN_USE_AUTOTUNE", "default (on)")
    return env


class Trainer:
    """One network, its optimizer (SGD with momentum, or Adam) and loss, on one device; the phases of a step.

    Eager mode can stop between phases. A graph engine runs a step as one program, so it
    compiles three cumulative programs (forward, forward + backward, whole step) and
    convbench.timing.derive_phases takes differences ("derived" phase method).
    """

    framework = NAME

    def __init__(self, spec: ArchSpec, weights, lr: float, momentum: float, device: str = "cpu", engine: str = "eager",
                 seed: int = 0, optimizer: str = "sgd", learned_lr: dict | None = None):
        keras.utils.set_random_seed(seed)  # what samples at training time (the L0 gates) draws from here
        if engine not in ENGINES:
            raise ValueError(f"unknown TensorFlow engine {engine!r} (known: {', '.join(ENGINES)})")
        self.device, self.engine, self.warnings = _device_name(device), engine, []
        self.phase_method = "direct" if engine == "eager" else "derived"
        with tf.device(self.device):
            self.model = build(spec, weights)

            def make(rate):
                if optimizer == "sgd":
                    return keras.optimizers.SGD(learning_rate=rate, momentum=momentum)
                return keras.optimizers.Adam(learning_rate=rate, epsilon=1e-7)
            # The learned radii and gates have optimizers and learning rates of their own (learned.LEARNED_KINDS),
            # which start with the penalties (start_learning); until then only the weights train.
            named = _named_variables(self.model)
            self.groups = {kind: [v for name, v in named.items() if learned.kind(name) == kind]
                           for kind in (None, *learned.LEARNED_KINDS)}
            self.optimizers = {kind: make(lr if kind is None else (learned_lr or {}).get(kind, lr))
                               for kind, variables in self.groups.items() if variables}
            for kind, opt in self.optimizers.items():
                opt.build(self.groups[kind])
            self.optimizer = self.optimizers[None]
        self.optimizer_name = f"keras.optimizers.{type(self.optimizer).__name__}, inside the engine's program"
        self.penalty_weights = (0.0, 0.0)  # (radius, L0): set by start_learning
        self._tape = self._loss = self._grads = None
        self._compile()

    def _compile(self):
        """The graph engines' programs (again after start_learning: the penalty weights are constants in them)."""
        if self.engine != "eager":
            program = tf.function(jit_compile=self.engine == "xla", reduce_retracing=True)
            self._forward_program = program(self._forward_loss)
            self._forward_backward_program = program(self._forward_backward)
            self._step_program = program(self._step)
            self._gradients_program = program(self._gradients)
            self._evaluate_program = program(self._evaluate)

    @property
    def learning(self) -> bool:
        return self.penalty_weights != (0.0, 0.0)

    def start_learning(self, train_size: int) -> None:
        """The second phase: the radii and gates train from now on, and the penalties join the loss, the L0 term
        divided by the training-set size (Louizos et al. 2018, eq. 3)."""
        self.penalty_weights = (1.0, 1.0 / train_size)
        self._compile()

    def to_device(self, x: np.ndarray, y: np.ndarray):
        """Inputs given in NCHW float32 with integer labels; returned NHWC on the device."""
        with tf.device(self.device):
            return tf.identity(x.transpose(0, 2, 3, 1)), tf.identity(y.astype(np.int64))

    def num_params(self) -> int:
        return int(sum(np.prod(v.shape) for v in self.model.trainable_variables))

    def sync(self) -> None:
        _sync_for(self.device)()

    @staticmethod
    def _loss_fn(logits, y):
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))

    # The computations, written once; graph engines compile them, eager mode runs them as they are.
    def _forward_loss(self, x, y):
        loss = self._loss_fn(self.model(x, training=True), y)
        if self.learning:
            loss += sum(w * t for w, t in zip(self.penalty_weights, self.model.penalties()))
        return loss

    def _apply(self, grads):
        """Each optimizer on its own variables; the learned ones only once learning has started."""
        grads = dict(zip((v.path for v in self.model.trainable_variables), grads))
        for kind, opt in self.optimizers.items():
            if kind is None or self.learning:
                opt.apply_gradients([(grads[v.path], v) for v in self.groups[kind]])

    def _forward_backward(self, x, y):
        with tf.GradientTape() as tape:
            loss = self._forward_loss(x, y)
        return loss, tape.gradient(loss, self.model.trainable_variables)

    def _step(self, x, y):
        loss, grads = self._forward_backward(x, y)
        self._apply(grads)
        return loss

    def _gradients(self, x, y):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = self._forward_loss(x, y)
        return loss, tape.gradient(loss, [x, *_named_variables(self.model).values()])

    # Eager mode: the three phases of a training step, timed one by one by convbench.timing.
    def forward(self, x, y):
        with tf.device(self.device), tf.GradientTape() as tape:
            self._loss = self._forward_loss(x, y)
        self._tape = tape

    def backward(self):
        with tf.device(self.device):
            self._grads = self._tape.gradient(self._loss, self.model.trainable_variables)

    def optimizer_step(self):
        with tf.device(self.device):
            self._apply(self._grads)

    def phases(self, x, y) -> dict:
        """Direct phases in eager mode; the cumulative programs of a graph engine otherwise."""
        if self.engine == "eager":
            return {"forward": lambda: self.forward(x, y), "backward": self.backward, "optimizer": self.optimizer_step}
        with tf.device(self.device):
            return {"forward": lambda: self._forward_program(x, y),
                    "forward_backward": lambda: self._forward_backward_program(x, y),
                    "step": lambda: self._step_program(x, y)}

    def step(self, x, y):
        if self.engine == "eager":
            self.forward(x, y)
            self.backward()
            self.optimizer_step()
            return self._loss
        with tf.device(self.device):
            return self._step_program(x, y)

    def train_step(self, x, y) -> float:
        return float(self.step(x, y))

    def memory(self, x, y) -> dict:
        """The device's peak allocation over one step where TensorFlow reports it (GPUs); a tape has no
        hook that counts what it saves, so that stays unmeasured here."""
        peak = None
        if self.device != "/CPU:0":
            name = self.device.strip("/")
            tf.config.experimental.reset_memory_stats(name)
            self.step(x, y)
            self.sync()
            peak = tf.config.experimental.get_memory_info(name)["peak"]
        return {"saved_for_backward_bytes": None, "peak_bytes": peak}

    def _evaluate(self, x, y):
        logits = self.model(x, training=False)
        loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        return loss, tf.reduce_sum(tf.cast(tf.argmax(logits, axis=1) == y, tf.int64))

    def evaluate(self, x, y) -> tuple[float, float]:
        """Summed loss and number of correct predictions on one batch, in the engine's program."""
        run = self._evaluate if self.engine == "eager" else self._evaluate_program
        with tf.device(self.device):
            loss, correct = run(x, y)
        return float(loss), int(correct)

    def gradients(self, x, y) -> dict[str, np.ndarray]:
        """Loss gradients w.r.t. every weight and the input, in neutral names and layouts, under this engine."""
        run = self._gradients if self.engine == "eager" else self._gradients_program
        with tf.device(self.device):
            loss, grads = run(x, y)
        names = list(_named_variables(self.model))
        named = {name: _from_tf(g.numpy()) for name, g in zip(names, grads[1:])}
        named["input"] = grads[0].numpy().transpose(0, 3, 1, 2)
        named["loss"] = loss.numpy()
        return named

    def logits(self, x) -> np.ndarray:
        return self.model(x, training=False).numpy()


def _on(device: str, fn):
    def run():
        with tf.device(device):
            return fn()
    return run


def _sync_for(device: str):
    return tf.test.experimental.sync_devices if device != "/CPU:0" else (lambda: None)


def layer_phases(block, tensors: dict[str, np.ndarray], device: str = "cpu"):
    """One convolution and its activation, each direction on its own: forward, backward to the input,
    backward to the weights (and bias), activation forward and backward. Returns (phases, sync);
    each phase returns what it computed (in TensorFlow's layouts)."""
    dev = _device_name(device)
    strides = [1, 1, 1, 1]
    activation = tf.nn.relu if block.activation == "relu" else (lambda v: maxout(v, block.pieces))
    with tf.device(dev):
        t = {name: tf.constant(_to_tf(value) if name == "weight" else
                               value.transpose(0, 2, 3, 1) if value.ndim == 4 else value)
             for name, value in tensors.items()}
        x, w, b, grad_out, pre = t["x"], t["weight"], t["bias"], t["grad_out"], t["pre"]
        with tf.GradientTape(persistent=True) as tape:  # kept, so the activation's backward can run again
            tape.watch(pre)
            post = activation(pre)
    phases = {
        "forward": lambda: tf.nn.bias_add(tf.nn.conv2d(x, w, 1, "SAME"), b),
        "backward_input": lambda: tf.raw_ops.Conv2DBackpropInput(
            input_sizes=x.shape, filter=w, out_backprop=grad_out, strides=strides, padding="SAME"),
        "backward_weight": lambda: (tf.raw_ops.Conv2DBackpropFilter(
            input=x, filter_sizes=w.shape, out_backprop=grad_out, strides=strides, padding="SAME"),
            tf.reduce_sum(grad_out, axis=(0, 1, 2))),
        "activation_forward": lambda: activation(pre),
        "activation_backward": lambda: tape.gradient(post, pre, output_gradients=t["grad_post"]),
    }
    return {name: _on(dev, fn) for name, fn in phases.items()}, _sync_for(dev)


def ceilings(device: str, gemm_n: int, copy_bytes: int):
    """Programs that find the device's own ceilings: fp32 GEMM (n x n) and a streaming scale
    (reads and writes copy_bytes). Returns (programs, flops or bytes per call, sync)."""
    dev = _device_name(device)
    with tf.device(dev):
        a, b = tf.random.normal((gemm_n, gemm_n)), tf.random.normal((gemm_n, gemm_n))
        src = tf.ones(copy_bytes // 4)
    programs = {"gemm": _on(dev, lambda: tf.linalg.matmul(a, b)), "stream": _on(dev, lambda: src * 2.0)}
    return programs, {"gemm": 2 * gemm_n**3, "stream": 2 * copy_bytes}, _sync_for(dev)

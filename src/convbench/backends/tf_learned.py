"""TensorFlow (Keras 3) layers for a learned kernel size (MaskedConv2D) and a learned filter count (L0Gate).

The formulas are those of convbench.learned. Layers work in NHWC with HWIO kernels, like tf_backend;
export_params / load_params speak the neutral layout (OIHW), and crop / prune return neutral weights.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from convbench import learned, spec  # noqa: E402


def ramp_mask(distance, radius, ramp: float):
    """clip((ramp + z - r) / ramp, 0, 1) over a (K, K) distance grid; radius (1,) or (filters,)
    gives a (K, K, 1, 1 or filters) mask that broadcasts over an HWIO kernel."""
    distance = tf.cast(distance, radius.dtype)[:, :, None, None]
    return tf.clip_by_value((ramp + tf.reshape(radius, (1, 1, 1, -1)) - distance) / ramp, 0.0, 1.0)


def masked_conv2d(x, kernel, bias, radius, distance, ramp: float = 1.0):
    """Convolution with kernel * mask, 'SAME' padding (symmetric K // 2 for odd K, stride 1); NHWC, HWIO."""
    return tf.nn.bias_add(tf.nn.conv2d(x, kernel * ramp_mask(distance, radius, ramp), 1, "SAME"), bias)


def hard_concrete(log_alpha, noise):
    """Sampled gate from uniform noise: clip(sigmoid((log u - log(1-u) + log_alpha) / beta)
    * (zeta - gamma) + gamma, 0, 1)."""
    u = tf.clip_by_value(tf.cast(noise, log_alpha.dtype), learned.NOISE_EPS, 1 - learned.NOISE_EPS)
    s = tf.sigmoid((tf.math.log(u) - tf.math.log1p(-u) + log_alpha) / learned.BETA)
    return tf.clip_by_value(s * (learned.ZETA - learned.GAMMA) + learned.GAMMA, 0.0, 1.0)


def test_gate(log_alpha):
    return tf.clip_by_value(tf.sigmoid(log_alpha) * (learned.ZETA - learned.GAMMA) + learned.GAMMA, 0.0, 1.0)


test_gate.__test__ = False


class MaskedConv2D(keras.layers.Layer):
    """A max_kernel x max_kernel convolution whose taps are weighted by a ramp mask of learnable radius.

    The radius is exp(log_radius), log_radius the variable (one entry per layer, or one per filter with
    per_filter=True). penalty() is the mean radius in pixels: the network's radius penalty is
    radius_penalty * sum of its layers' penalty().
    """

    def __init__(self, filters: int, max_kernel: int, init_radius: float, ramp: float = 1.0,
                 per_filter: bool = False, **kwargs):
        super().__init__(**kwargs)
        spec.validate_mask("MaskedConv2D", max_kernel, init_radius, ramp)
        self.filters, self.max_kernel, self.init_radius = filters, max_kernel, float(init_radius)
        self.ramp, self.per_filter = float(ramp), per_filter
        self.distance = learned.distance_grid(max_kernel)

    def build(self, input_shape):
        k = self.max_kernel
        self.kernel = self.add_weight(shape=(k, k, input_shape[-1], self.filters), name="kernel",
                                      initializer="he_uniform")  # placeholder; builders load neutral weights
        self.bias = self.add_weight(shape=(self.filters,), name="bias", initializer="zeros")
        self.log_radius = self.add_weight(shape=(self.filters if self.per_filter else 1,), name="log_radius",
                                          initializer=keras.initializers.Constant(float(np.log(self.init_radius))))

    @property
    def radius(self):
        return tf.exp(self.log_radius)

    def mask(self):
        return ramp_mask(self.distance, self.radius, self.ramp)

    def call(self, x):
        return masked_conv2d(x, self.kernel, self.bias, self.radius, self.distance, self.ramp)

    def penalty(self):
        return tf.reduce_mean(self.radius)


class L0Gate(keras.layers.Layer):
    """Hard-concrete gates, one per map, multiplying the maps (NHWC, last axis) after the activation.

    training=True samples the gates once per call (one sample shared by the batch) from `noise` if
    given (uniform, shape (maps,)), else from keras.random.uniform with a SeedGenerator(seed).
    training=False uses the deterministic test-time gate. penalty() is the expected L0 norm: the
    expected number of open gates, sum of P(gate != 0).
    """

    def __init__(self, maps: int, init_log_alpha: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        spec.validate_gate("L0Gate", init_log_alpha)
        self.maps, self.init_log_alpha = maps, float(init_log_alpha)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        self.log_alpha = self.add_weight(shape=(self.maps,), name="log_alpha",
                                         initializer=keras.initializers.Constant(self.init_log_alpha))

    def gate(self, training=False, noise=None):
        if not training:
            return test_gate(self.log_alpha)
        if noise is None:
            noise = keras.random.uniform((self.maps,), seed=self.seed_generator, dtype=self.log_alpha.dtype)
        return hard_concrete(self.log_alpha, noise)

    def call(self, x, training=False, noise=None):
        return x * self.gate(training, noise)

    def penalty(self):
        return tf.reduce_sum(tf.sigmoid(self.log_alpha - learned.BETA * float(np.log(-learned.GAMMA / learned.ZETA))))


# ---- neutral parameters: load, export, crop, prune -----------------------------------------------

def _variables(layer) -> dict[str, tf.Variable]:
    """The layer's variables under neutral names: a MaskedConv2D, an L0Gate, a Conv2D or a Dense."""
    if isinstance(layer, L0Gate):
        return {"log_alpha": layer.log_alpha}
    named = {"weight": layer.kernel, "bias": layer.bias}
    if isinstance(layer, MaskedConv2D):
        named["log_radius"] = layer.log_radius
    return named


def _to_tf(value):
    return value.transpose(2, 3, 1, 0) if value.ndim == 4 else value.T if value.ndim == 2 else value


def _from_tf(value):
    return value.transpose(3, 2, 0, 1) if value.ndim == 4 else value.T if value.ndim == 2 else value


def export_params(layer) -> dict[str, np.ndarray]:
    """The layer's parameters by name ("weight", "bias", "log_radius", "log_alpha"), neutral layout."""
    return {name: _from_tf(v.numpy()) for name, v in _variables(layer).items()}


def load_params(layer, params: dict[str, np.ndarray]) -> None:
    """Assign neutral parameters to a built layer."""
    for name, variable in _variables(layer).items():
        variable.assign(_to_tf(np.asarray(params[name])))


def crop(layer: MaskedConv2D, k: int | None = None, threshold: float = 0.0) -> dict[str, np.ndarray]:
    """Plain neutral weights {"weight", "bias"} of size k (default: the effective size at `threshold`)."""
    mask = _from_tf(layer.mask().numpy())  # (K, K, 1, F) -> (F, 1, K, K)
    k = learned.effective_size(mask, threshold) if k is None else k
    return {"weight": learned.crop(_from_tf(layer.kernel.numpy()), mask, k), "bias": layer.bias.numpy().copy()}


def prune(conv: dict[str, np.ndarray], gate: L0Gate, next_weight: np.ndarray, pieces: int = 1):
    """Fold `gate`'s test-time gates into plain neutral conv weights {"weight", "bias"}, drop the closed
    maps and the next layer's matching inputs (neutral layout). Returns (conv, next_weight, kept)."""
    weight, bias, next_weight, kept = learned.prune(
        conv["weight"], conv["bias"], test_gate(gate.log_alpha).numpy(), next_weight, pieces)
    return {"weight": weight, "bias": bias}, next_weight, kept


def plain_conv(params: dict[str, np.ndarray]) -> keras.layers.Conv2D:
    """A built keras Conv2D ('same' padding) holding cropped or pruned neutral weights."""
    out_channels, in_channels, k, _ = params["weight"].shape
    conv = keras.layers.Conv2D(out_channels, k, padding="same")
    conv.build((None, None, None, in_channels))
    load_params(conv, params)
    return conv

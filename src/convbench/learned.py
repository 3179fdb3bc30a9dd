"""Learned kernel size and learned filter count: the framework-neutral maths and decisions, in numpy.

Both backends (backends/torch_learned.py, backends/tf_learned.py) compute the same formulas on their
own tensors; cropping and pruning happen here, on neutral weights (PyTorch layout: OIHW, linear out x in),
so both frameworks shrink a trained network in exactly the same way.

Learned kernel size. A convolution keeps a full K x K weight (K = max_kernel, odd) and multiplies it by
a radial ramp mask m(r) = clip((ramp + z - r) / ramp, 0, 1) with a learnable radius z: m = 1 for r <= z,
falling linearly to 0 at r = z + ramp. The distance r of kernel tap (i, j) from the centre c = (K-1)/2 is
the Chebyshev distance max(|i-c|, |j-c|). With it, the taps at distance <= rho form a centred square of
side 2*floor(rho) + 1, so the support of the mask is always exactly a square kernel of odd size: cropping
keeps every tap it should and no tap it should not, and the cropped network is the ordinary k x k
convolution that the hand-tuned kernel-size study compares against. (A Euclidean distance gives a disc;
its bounding square would carry zeroed corner taps that cost time but do nothing.)

The radius is learned on a log scale, z = exp(log_radius) (N-Jet learns its sigma as 2^s): a step changes
it by a fraction of itself, and it cannot fall below 0 (the centre tap always stays). Training is in two
phases (convbench.run.train): the network first fits the data with every mask and gate held at its start
(a kernel well inside K, gates open); once the data loss has fallen and levelled off, the radii and gates
get their own optimizers and learning rates (as DCLS gives its positions theirs) and the penalties join the
loss. A ramp mask passes no gradient from taps outside its support, so a kernel that starts below the
task's scale has nothing telling it to grow on a task that a narrower field cannot do at all; a kernel that
starts above it and shrinks under a penalty only once the task is fitted stops where dropping the next ring
costs more data loss than the penalty saves: the smallest field that still does the task.

Learned filter count. Each output map of a convolution gets a hard-concrete gate (Louizos, Welling,
Kingma 2018, "Learning Sparse Neural Networks through L0 Regularization"), with beta = 2/3,
gamma = -0.1, zeta = 1.1. The gate multiplies the map after the activation; since a gate is >= 0,
gate * relu(y) = relu(gate * y) and gate * maxout(y) = maxout(gate * y), so at test time a gate folds
into the convolution's weights and bias (all pieces of a maxout map share their map's gate).
"""
from __future__ import annotations

import dataclasses

import numpy as np

# Hard-concrete constants (Louizos et al. 2018, section 4 and appendix).
BETA = 2.0 / 3.0  # temperature of the concrete distribution
GAMMA = -0.1  # the stretched interval (gamma, zeta) around (0, 1), so that 0 and 1 have mass
ZETA = 1.1
NOISE_EPS = 1e-6  # uniform noise is clipped to [eps, 1 - eps] so that log u and log(1 - u) stay finite


# The learned parameters by the suffix of their neutral names; each kind has its own optimizer and learning rate
# (train.learned_lr), which start with the penalties.
LEARNED_KINDS = ("log_radius", "log_alpha")


def kind(name: str) -> str | None:
    """The learned kind of a parameter by its neutral name; None for an ordinary weight."""
    return next((k for k in LEARNED_KINDS if name.endswith(f".{k}")), None)


# ---- learned kernel size ------------------------------------------------------------------------

def distance_grid(max_kernel: int) -> np.ndarray:
    """(K, K) Chebyshev distance of every tap from the kernel's centre: 0 at the centre, (K-1)/2 at the rim."""
    c = (max_kernel - 1) // 2
    i = np.abs(np.arange(max_kernel) - c)
    return np.maximum(i[:, None], i[None, :]).astype(np.float32)


def ramp_mask(distance: np.ndarray, radius, ramp: float = 1.0) -> np.ndarray:
    """m(r) = clip((ramp + z - r) / ramp, 0, 1). `radius` is a scalar or one radius per filter,
    which gives a mask of shape (filters, 1, K, K) that broadcasts over an OIHW weight."""
    radius = np.asarray(radius, dtype=distance.dtype)
    if radius.ndim:
        radius = radius.reshape(-1, 1, 1, 1)
    return np.clip((ramp + radius - distance) / ramp, 0.0, 1.0)


def effective_size(mask: np.ndarray, threshold: float = 0.0) -> int:
    """Smallest odd k whose centred k x k window holds every mask entry above `threshold`.

    Over all filters of a per-filter mask (one layer has one kernel size). threshold = 0 keeps every
    nonzero tap, so a crop to this size is exact; a larger threshold drops the taps of the ramp's outer
    ring whose mask is at most the threshold (see crop). At least 1: a layer whose mask is at or below
    the threshold everywhere keeps its centre tap rather than vanishing from the architecture.
    """
    size = mask.shape[-1]
    distance = distance_grid(size)
    above = np.broadcast_to(mask > threshold, mask.shape).reshape(-1, size, size).any(axis=0)
    if not above.any():
        return 1
    return 2 * int(distance[above].max()) + 1


def crop(weight: np.ndarray, mask: np.ndarray, k: int) -> np.ndarray:
    """The plain k x k kernel of a masked convolution: weight * mask, centre k x k window (OIHW).

    The mask is baked in, so the cropped convolution (padding k // 2) equals the masked one (padding
    K // 2) exactly when every tap outside the window has mask 0. Otherwise the dropped taps are the
    whole difference: |masked - cropped| <= sum of |weight * mask| over the dropped taps of a filter,
    times max |input| (crop_error_bound).
    """
    size = weight.shape[-1]
    if k % 2 != 1 or not 1 <= k <= size:
        raise ValueError(f"crop size must be odd and in [1, {size}], got {k}")
    lo = (size - k) // 2
    return (weight * mask)[..., lo:lo + k, lo:lo + k].astype(weight.dtype)


def crop_error_bound(weight: np.ndarray, mask: np.ndarray, k: int, max_abs_input: float) -> float:
    """Largest possible |masked - cropped| output difference: the taps crop drops, at the largest input."""
    kept = np.zeros(weight.shape[-2:], bool)
    lo = (weight.shape[-1] - k) // 2
    kept[lo:lo + k, lo:lo + k] = True
    dropped = np.abs(weight * mask) * ~kept
    return float(dropped.sum(axis=(1, 2, 3)).max() * max_abs_input)


# ---- learned filter count: hard-concrete gates ---------------------------------------------------

def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def sample_gate(log_alpha, noise) -> np.ndarray:
    """A training-time gate from uniform noise u: s = sigmoid((log u - log(1-u) + log_alpha) / beta),
    stretched to (gamma, zeta) and clipped to [0, 1]. The reference for both backends."""
    u = np.clip(noise, NOISE_EPS, 1 - NOISE_EPS)
    s = _sigmoid((np.log(u) - np.log1p(-u) + log_alpha) / BETA)
    return np.clip(s * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


def test_gate(log_alpha) -> np.ndarray:
    """The deterministic test-time gate: clip(sigmoid(log_alpha) * (zeta - gamma) + gamma, 0, 1).
    Exactly 0 when sigmoid(log_alpha) <= -gamma / (zeta - gamma), i.e. log_alpha <= log(1/11)."""
    return np.clip(_sigmoid(np.asarray(log_alpha)) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


test_gate.__test__ = False  # not a pytest test, despite its name


def l0_penalty(log_alpha) -> np.ndarray:
    """Expected L0 norm of each gate, P(gate != 0) = sigmoid(log_alpha - beta * log(-gamma / zeta))."""
    return _sigmoid(np.asarray(log_alpha) - BETA * np.log(-GAMMA / ZETA))


def gate_cdf(x, log_alpha) -> np.ndarray:
    """P(gate <= x) for x in [0, 1): the CDF of the stretched concrete variable before clipping
    (the clip puts the mass below 0 at 0 and the mass above 1 at 1)."""
    q = (np.asarray(x, dtype=np.float64) - GAMMA) / (ZETA - GAMMA)
    return _sigmoid(BETA * (np.log(q) - np.log1p(-q)) - log_alpha)


def prune(weight: np.ndarray, bias: np.ndarray, gate: np.ndarray, next_weight: np.ndarray, pieces: int = 1):
    """Fold the test-time gates of a convolution into its weights, drop the maps whose gate is 0,
    and drop the matching input channels of the next layer (a conv OIHW or the linear head, out x in).

    `gate` has one entry per output map (width / pieces); map j owns the conv's output channels
    i * maps + j for every piece i (contiguous slabs, see convbench.spec), which stay contiguous slabs.
    Returns (weight, bias, next_weight, kept map indices).
    """
    maps = len(gate)
    if weight.shape[0] != maps * pieces or next_weight.shape[1] != maps:
        raise ValueError(f"{maps} gates x {pieces} pieces do not fit a conv of {weight.shape[0]} filters "
                         f"and a next layer of {next_weight.shape[1]} inputs")
    kept = np.flatnonzero(gate > 0)
    rows = (np.arange(pieces)[:, None] * maps + kept[None, :]).ravel()
    scale = np.tile(gate[kept], pieces).astype(weight.dtype)
    return (weight[rows] * scale[:, None, None, None], bias[rows] * scale, next_weight[:, kept], kept)


# ---- a trained network, shrunk to a plain spec -------------------------------------------------------

def shrink(spec, weights: dict[str, np.ndarray], threshold: float = 0.0):
    """Crop every masked convolution to its effective size and prune every gated-off map (with the next
    layer's matching inputs). Returns (plain ArchSpec, its neutral weights, per block: (kernel, maps)).

    Learned blocks have depth 1 (the spec enforces it), so block i holds the one conv blocks.i.convs.0.
    """
    weights = {k: np.array(v) for k, v in weights.items()}
    blocks, kept = [], []
    for i, block in enumerate(spec.blocks):
        if not block.learned:
            blocks.append(block)
            kept.append((block.kernel, block.out_channels))
            continue
        conv = f"blocks.{i}.convs.0"
        weight, bias = weights.pop(f"{conv}.weight"), weights.pop(f"{conv}.bias")
        if block.init_radius is not None:
            mask = ramp_mask(distance_grid(block.kernel), np.exp(weights.pop(f"{conv}.log_radius")))
            weight = crop(weight, mask, effective_size(mask, threshold))
        width = weight.shape[0]
        if block.gates:
            gate = test_gate(weights.pop(f"blocks.{i}.gate.log_alpha"))
            after = f"blocks.{i + 1}.convs.0.weight" if i + 1 < len(spec.blocks) else "head.weight"
            weight, bias, weights[after], maps = prune(weight, bias, gate, weights[after], block.pieces)
            if len(maps) == 0:
                raise ValueError(f"architectures.{spec.name}.blocks[{i}]: every gate closed; nothing is left to keep")
            width = len(maps) * block.pieces
        weights[f"{conv}.weight"], weights[f"{conv}.bias"] = weight, bias
        blocks.append(dataclasses.replace(block, width=width, kernel=weight.shape[-1], init_radius=None, gates=False,
                                          radius_penalty=0.0, l0_penalty=0.0))
        kept.append((weight.shape[-1], width // block.pieces))
    return dataclasses.replace(spec, name=f"{spec.name}-shrunk", blocks=tuple(blocks)), weights, kept

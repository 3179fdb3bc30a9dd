"""Architecture specs: plain data that both frameworks build the same network from.

A network is a list of blocks followed by global average pooling and one linear
classifier. A block is `depth` stacked "same"-padded convolutions, each followed
by its activation, then an optional max-pool.

Maxout convention (stated once, used everywhere): a convolution with `width`
filters followed by maxout with k pieces yields width/k maps, and output map j
is the maximum over pieces i of input map i*(width/k) + j. The pieces are
contiguous slabs of channels, so k = 2 is exactly the Max-Feature-Map of
Lightened CNN (the max of the first and the second half of the channels).

Learned size and width (convbench.learned): a block with `init_radius` masks each
convolution's kernel-size taps with a ramp of learnable radius (`kernel` is then
the largest size it may keep); a block with `gates` multiplies each map after the
activation by a hard-concrete L0 gate. Training adds the penalties to the loss;
afterwards the network is cropped and pruned to a plain spec.
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from convbench.learned import test_gate

ACTIVATIONS = ("relu", "maxout")


class SpecError(ValueError):
    """A spec or config value is invalid; the message names the field."""


@dataclass(frozen=True)
class Block:
    width: int  # filters of each convolution in the block
    kernel: int = 3
    depth: int = 1
    activation: str = "relu"
    pieces: int = 1  # maxout pieces k; 1 for relu
    pool: int = 2  # max-pool window and stride after the block; 1 for none
    init_radius: float | None = None  # learnable kernel radius (a masked `kernel` x `kernel` convolution)
    radius_penalty: float = 0.0  # x the mean radius of each masked convolution, added to the loss
    gates: bool = False  # an L0 hard-concrete gate on every map
    init_log_alpha: float = 2.0
    l0_penalty: float = 0.0  # x the expected number of open gates, added to the loss

    @property
    def out_channels(self) -> int:
        return self.width // self.pieces

    @property
    def learned(self) -> bool:
        return self.init_radius is not None or self.gates

    def validate(self, where: str) -> None:
        def need(ok: bool, field: str, rule: str, got) -> None:
            if not ok:
                raise SpecError(f"{where}.{field}: {rule} (got {got!r})")

        for field in ("width", "kernel", "depth", "pieces", "pool"):
            value = getattr(self, field)
            need(isinstance(value, int) and not isinstance(value, bool), field, "must be an integer", value)
            need(value >= 1, field, "must be >= 1", value)
        need(self.kernel % 2 == 1, "kernel", "must be odd so that 'same' padding is symmetric", self.kernel)
        need(self.activation in ACTIVATIONS, "activation", f"must be one of {', '.join(ACTIVATIONS)}", self.activation)
        if self.activation == "relu":
            need(self.pieces == 1, "pieces", "must be 1 for relu", self.pieces)
        need(self.width % self.pieces == 0, "pieces", f"must divide width {self.width}", self.pieces)
        if self.init_radius is not None:
            need(self.depth == 1, "depth", "must be 1 with a learned kernel size or gates (one crop per block)",
                 self.depth)
            validate_mask(where, self.kernel, self.init_radius, radius_penalty=self.radius_penalty)
        if self.gates:
            need(self.depth == 1, "depth", "must be 1 with a learned kernel size or gates (one crop per block)",
                 self.depth)
            validate_gate(where, self.init_log_alpha, self.l0_penalty)


# ---- settings of learned blocks (convbench.learned) ------------------------------------------------

def _need(ok: bool, where: str, field: str, rule: str, got) -> None:
    if not ok:
        raise SpecError(f"{where}.{field}: {rule} (got {got!r})")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def validate_mask(where: str, max_kernel, init_radius, ramp=1.0, threshold=0.0, radius_penalty=0.0) -> None:
    """Settings of a masked convolution; raises SpecError (a ValueError) naming the field, e.g.
    "architectures.k7.blocks[0].max_kernel: must be odd ... (got 6)".

    The initial mask must fit the kernel: its support is r < init_radius + ramp, and the K x K grid holds
    r <= (K-1)/2, so init_radius + ramp <= (K+1)/2 (with ramp 1: init_radius <= (K-1)/2). During training
    the radius may grow past that; the mask then saturates at 1 on the whole grid (no loss gradient
    reaches the radius, only the penalty, which pulls it back). The radius is learned as its logarithm,
    so init_radius must be > 0.
    """
    _need(isinstance(max_kernel, int) and not isinstance(max_kernel, bool), where, "max_kernel",
          "must be an integer", max_kernel)
    _need(max_kernel >= 1, where, "max_kernel", "must be >= 1", max_kernel)
    _need(max_kernel % 2 == 1, where, "max_kernel", "must be odd so that the mask's centre is a tap "
          "and 'same' padding is symmetric", max_kernel)
    _need(_is_number(ramp) and ramp > 0, where, "ramp", "must be a number > 0", ramp)
    _need(_is_number(init_radius) and init_radius > 0, where, "init_radius",
          "must be a number > 0 (it is learned on a log scale)", init_radius)
    _need(init_radius + ramp <= (max_kernel + 1) / 2, where, "init_radius",
          f"must be <= (max_kernel + 1) / 2 - ramp = {(max_kernel + 1) / 2 - ramp:g} so that the initial "
          f"mask fits a {max_kernel}x{max_kernel} kernel", init_radius)
    _need(_is_number(threshold) and 0 <= threshold < 1, where, "threshold",
          "must be in [0, 1) (0 keeps every nonzero tap: an exact crop)", threshold)
    _need(_is_number(radius_penalty) and radius_penalty >= 0, where, "radius_penalty",
          "must be a number >= 0", radius_penalty)


def validate_gate(where: str, init_log_alpha, l0_penalty=0.0) -> None:
    """Settings of L0 gates; raises SpecError naming the field. init_log_alpha must leave the gates
    open at the start (test-time gate > 0, i.e. init_log_alpha > log(1/11) ~ -2.40)."""
    _need(_is_number(init_log_alpha), where, "init_log_alpha", "must be a finite number", init_log_alpha)
    _need(test_gate(init_log_alpha) > 0, where, "init_log_alpha",
          "must be > log(-gamma / zeta) = -2.398, or every gate starts closed", init_log_alpha)
    _need(_is_number(l0_penalty) and l0_penalty >= 0, where, "l0_penalty", "must be a number >= 0", l0_penalty)


class Conv(NamedTuple):
    name: str  # parameter prefix shared by both frameworks, e.g. "blocks.0.convs.1"
    in_channels: int
    out_channels: int
    kernel: int
    block: int  # index of the block it belongs to


@dataclass(frozen=True)
class ArchSpec:
    name: str
    blocks: tuple[Block, ...]
    in_channels: int = 1
    num_classes: int = 10

    def __post_init__(self):
        if not self.blocks:
            raise SpecError(f"architectures.{self.name}.blocks: must list at least one block")
        for i, block in enumerate(self.blocks):
            block.validate(f"architectures.{self.name}.blocks[{i}]")

    @classmethod
    def from_dict(cls, name: str, data: dict, in_channels: int = 1, num_classes: int = 10) -> ArchSpec:
        if not isinstance(data.get("blocks"), (list, tuple)):
            raise SpecError(f"architectures.{name}.blocks: must be a list of blocks")
        blocks = []
        for i, raw in enumerate(data["blocks"]):
            unknown = set(raw) - {f.name for f in dataclasses.fields(Block)}
            if unknown:
                raise SpecError(f"architectures.{name}.blocks[{i}]: unknown field(s) {sorted(unknown)}")
            if "width" not in raw:
                raise SpecError(f"architectures.{name}.blocks[{i}].width: is required")
            blocks.append(Block(**raw))
        return cls(name, tuple(blocks), in_channels, num_classes)

    @classmethod
    def from_record(cls, data: dict) -> ArchSpec:
        """The spec of a record's arch (to_dict's output); what a hand-written one leaves out takes the defaults
        above, the only copy of them."""
        io = {k: data[k] for k in ("in_channels", "num_classes") if k in data}
        return cls.from_dict(data.get("name", "record"), data, **io)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def with_io(self, in_channels: int, num_classes: int) -> ArchSpec:
        return dataclasses.replace(self, in_channels=in_channels, num_classes=num_classes)

    def convs(self) -> list[Conv]:
        convs, channels = [], self.in_channels
        for i, block in enumerate(self.blocks):
            for j in range(block.depth):
                convs.append(Conv(f"blocks.{i}.convs.{j}", channels, block.width, block.kernel, i))
                channels = block.out_channels
        return convs

    @property
    def features(self) -> int:
        return self.blocks[-1].out_channels

    @property
    def receptive_field(self) -> int:
        """Receptive field of the first block, in input pixels (kernel-size studies compare these)."""
        first = self.blocks[0]
        return first.depth * (first.kernel - 1) + 1

    def describe(self) -> str:
        parts = []
        for b in self.blocks:
            act = "ReLU" if b.activation == "relu" else f"maxout-{b.pieces}"
            stack = f"{b.depth}x " if b.depth > 1 else ""
            parts.append(f"{stack}{b.kernel}x{b.kernel}/{b.width} {act}")
        return ", ".join(parts)


def param_count(spec: ArchSpec) -> int:
    """Trainable parameters: convolution weights and biases, learned radii and gates, and the classifier."""
    convs = sum(c.kernel**2 * c.in_channels * c.out_channels + c.out_channels for c in spec.convs())
    learned = sum((b.init_radius is not None) + b.gates * b.out_channels for b in spec.blocks for _ in range(b.depth))
    return convs + learned + spec.features * spec.num_classes + spec.num_classes


def field(spec: ArchSpec) -> int:
    """Receptive field of the whole network's last maps, in input pixels: every convolution widens it by
    (kernel - 1) and every pool by (window - 1), each times the stride of the maps it works on. Two blocks
    of k x k convolutions with 2x2 pools give 3k + 1 (10, 16, 22 for k = 3, 5, 7)."""
    size, stride = 1, 1
    for block in spec.blocks:
        size += block.depth * (block.kernel - 1) * stride + (block.pool - 1) * stride
        stride *= block.pool
    return size


def covering_field(spec: ArchSpec, scale: int) -> int | None:
    """The smallest field (convbench.spec.field) that a network of spec's shape reaches, with every masked block at
    any odd kernel up to its largest and the others as they are, and whose last convolution's maps see two marks
    `scale` pixels apart wherever the planted task puts them: the last convolution's field, on maps of stride S
    before the last pool, must be >= scale + S - 1 (its windows start every S pixels). None: no such kernel."""
    *first, last = spec.blocks
    stride = int(np.prod([b.pool for b in first]))

    def sees(net: ArchSpec) -> bool:
        return field(net) - (last.pool - 1) * stride >= scale + stride - 1

    def plain(kernels) -> ArchSpec:
        return dataclasses.replace(spec, blocks=tuple(dataclasses.replace(b, kernel=k, init_radius=None, gates=False)
                                                      for b, k in zip(spec.blocks, kernels)))

    options = [range(1, b.kernel + 1, 2) if b.init_radius is not None else (b.kernel,) for b in spec.blocks]
    return min((field(net) for net in map(plain, itertools.product(*options)) if sees(net)), default=None)


def conv_sizes(spec: ArchSpec, image_size: int) -> list[tuple[Conv, int]]:
    """Every convolution with the height (= width) of the maps it works on."""
    sizes = [image_size]
    for block in spec.blocks:
        sizes.append(sizes[-1] // block.pool)
    return [(c, sizes[c.block]) for c in spec.convs()]


def forward_flops(spec: ArchSpec, image_size: int) -> int:
    """Forward FLOPs of one example, counting a multiply-add as two FLOPs.

    Convolutions and the classifier only; activations, pooling and biases are
    left out, as torch.utils.flop_counter does.
    """
    flops = sum(conv_flops(c, size) for c, size in conv_sizes(spec, image_size))
    return flops + 2 * spec.features * spec.num_classes


def inside_taps(size: int, kernel: int) -> int:
    """Kernel taps that fall inside a size x size image, summed over the output positions of a "same" convolution.

    Per axis, the tap at offset d from the centre lands inside the image for size - |d| of the outputs (none once
    |d| >= size); the two axes are independent, so the count is the square of the sum over d. A library that skips
    the padding (oneDNN, cuDNN's implicit GEMM on small maps) does this much work, not size^2 * kernel^2.
    """
    half = (kernel - 1) // 2
    return sum(max(0, size - abs(d)) for d in range(-half, half + 1)) ** 2


def useful_forward_flops(spec: ArchSpec, image_size: int) -> int:
    """forward_flops with only the taps inside the image: the work a convolution cannot avoid."""
    flops = sum(conv_flops(c, size, useful=True) for c, size in conv_sizes(spec, image_size))
    return flops + 2 * spec.features * spec.num_classes


def conv_flops(conv: Conv, size: int, batch: int = 1, useful: bool = False) -> int:
    """One convolution's forward FLOPs on `batch` size x size maps: every tap of the padded kernel, or (useful) only
    the taps inside the image. The layer cells time single convolutions with these counts."""
    taps = inside_taps(size, conv.kernel) if useful else conv.kernel**2 * size**2
    return 2 * taps * conv.in_channels * conv.out_channels * batch


def step_flops(spec: ArchSpec, image_size: int, batch: int) -> int:
    """One training step: the backward pass costs twice the forward (to the input, to the weights)."""
    return 3 * forward_flops(spec, image_size) * batch


def useful_step_flops(spec: ArchSpec, image_size: int, batch: int) -> int:
    """step_flops with only the taps inside the image: what the roofline and the theoretical peak check."""
    return 3 * useful_forward_flops(spec, image_size) * batch


def step_counts(spec: ArchSpec, image_size: int, batch: int) -> dict[str, int]:
    """A record's counts of one training step: parameters, FLOPs of the forward pass per example and of the whole
    step, each counted two ways: every tap of the padded kernel, and (_useful) only the taps inside the image."""
    return {"params": param_count(spec), "flops_forward": forward_flops(spec, image_size),
            "flops_forward_useful": useful_forward_flops(spec, image_size),
            "flops_step": step_flops(spec, image_size, batch),
            "flops_step_useful": useful_step_flops(spec, image_size, batch)}


def step_bytes(spec: ArchSpec, image_size: int, batch: int) -> int:
    """Least fp32 memory traffic of one training step's convolutions: each of the forward, the backward
    to the input and the backward to the weights reads two of (input, weights, output) or their
    gradients and writes the third, each once."""
    per_pass = sum(batch * c.in_channels * size**2 + c.kernel**2 * c.in_channels * c.out_channels
                   + batch * c.out_channels * size**2 for c, size in conv_sizes(spec, image_size))
    return 3 * 4 * per_pass


def init_weights(spec: ArchSpec, seed: int) -> dict[str, np.ndarray]:
    """Framework-neutral initial weights in PyTorch layout (OIHW; linear as out x in).

    He-uniform convolutions, uniform(+-1/sqrt(fan_in)) classifier, zero biases.
    Both builders load this dict, so both frameworks start from identical weights.
    """
    rng = np.random.default_rng(seed)
    weights = {}
    for c in spec.convs():
        bound = np.sqrt(6.0 / (c.in_channels * c.kernel**2))
        shape = (c.out_channels, c.in_channels, c.kernel, c.kernel)
        weights[f"{c.name}.weight"] = rng.uniform(-bound, bound, shape).astype(np.float32)
        weights[f"{c.name}.bias"] = np.zeros(c.out_channels, np.float32)
        block = spec.blocks[c.block]
        if block.init_radius is not None:
            weights[f"{c.name}.log_radius"] = np.full(1, np.log(block.init_radius), np.float32)
        if block.gates:
            weights[f"blocks.{c.block}.gate.log_alpha"] = np.full(block.out_channels, block.init_log_alpha, np.float32)
    bound = 1.0 / np.sqrt(spec.features)
    weights["head.weight"] = rng.uniform(-bound, bound, (spec.num_classes, spec.features)).astype(np.float32)
    weights["head.bias"] = np.zeros(spec.num_classes, np.float32)
    return weights

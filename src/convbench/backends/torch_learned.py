"""PyTorch layers for a learned kernel size (MaskedConv2d) and a learned filter count (L0Gate).

The formulas are those of convbench.learned; crop and prune work on neutral numpy weights there,
this module only reads a trained layer out. Parameters are held in the neutral layout (OIHW).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from convbench import learned, spec


def ramp_mask(distance, radius, ramp: float):
    """clip((ramp + z - r) / ramp, 0, 1) over a (K, K) distance grid; radius (1,) or (filters,)
    gives a (1 or filters, 1, K, K) mask."""
    return torch.clamp((ramp + radius.view(-1, 1, 1, 1) - distance) / ramp, 0.0, 1.0)


def masked_conv2d(x, weight, bias, radius, distance, ramp: float = 1.0):
    """Convolution with weight * mask, 'same' padding K // 2 (NCHW, OIHW)."""
    return F.conv2d(x, weight * ramp_mask(distance, radius, ramp), bias, padding=weight.shape[-1] // 2)


def hard_concrete(log_alpha, noise):
    """Sampled gate from uniform noise: clip(sigmoid((log u - log(1-u) + log_alpha) / beta)
    * (zeta - gamma) + gamma, 0, 1)."""
    u = noise.clamp(learned.NOISE_EPS, 1 - learned.NOISE_EPS)
    s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + log_alpha) / learned.BETA)
    return torch.clamp(s * (learned.ZETA - learned.GAMMA) + learned.GAMMA, 0.0, 1.0)


def test_gate(log_alpha):
    return torch.clamp(torch.sigmoid(log_alpha) * (learned.ZETA - learned.GAMMA) + learned.GAMMA, 0.0, 1.0)


test_gate.__test__ = False


class MaskedConv2d(nn.Module):
    """A max_kernel x max_kernel convolution whose taps are weighted by a ramp mask of learnable radius.

    The radius is exp(log_radius), log_radius the parameter (one entry per layer, or one per filter with
    per_filter=True). penalty() is the mean radius in pixels: the network's radius penalty is
    radius_penalty * sum of its layers' penalty().
    """

    def __init__(self, in_channels: int, out_channels: int, max_kernel: int, init_radius: float,
                 ramp: float = 1.0, per_filter: bool = False):
        super().__init__()
        spec.validate_mask("MaskedConv2d", max_kernel, init_radius, ramp)
        self.ramp = float(ramp)
        bound = np.sqrt(6.0 / (in_channels * max_kernel**2))  # He-uniform placeholder; builders load neutral weights
        shape = (out_channels, in_channels, max_kernel, max_kernel)
        self.weight = nn.Parameter(torch.empty(shape).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.log_radius = nn.Parameter(torch.full((out_channels if per_filter else 1,), float(np.log(init_radius))))
        self.register_buffer("distance", torch.from_numpy(learned.distance_grid(max_kernel)), persistent=False)

    @property
    def radius(self):
        return torch.exp(self.log_radius)

    def mask(self):
        return ramp_mask(self.distance, self.radius, self.ramp)

    def forward(self, x):
        return masked_conv2d(x, self.weight, self.bias, self.radius, self.distance, self.ramp)

    def penalty(self):
        return self.radius.mean()


class L0Gate(nn.Module):
    """Hard-concrete gates, one per map, multiplying the maps (NCHW) after the activation.

    Training mode samples the gates once per forward (one sample shared by the batch, as the paper does
    for weights) from `noise` if given (uniform, shape (maps,)), else from torch.rand with `generator`.
    Eval mode uses the deterministic test-time gate. penalty() is the expected L0 norm: the expected
    number of open gates, sum of P(gate != 0).
    """

    def __init__(self, maps: int, init_log_alpha: float, generator: torch.Generator | None = None):
        super().__init__()
        spec.validate_gate("L0Gate", init_log_alpha)
        self.log_alpha = nn.Parameter(torch.full((maps,), float(init_log_alpha)))
        self.generator = generator

    def gate(self, noise: torch.Tensor | None = None):
        if not self.training:
            return test_gate(self.log_alpha)
        if noise is None:
            noise = torch.rand(self.log_alpha.shape, generator=self.generator, device=self.log_alpha.device)
        return hard_concrete(self.log_alpha, noise.to(self.log_alpha.dtype))

    def forward(self, x, noise: torch.Tensor | None = None):
        return x * self.gate(noise).view(1, -1, 1, 1)

    def penalty(self):
        return torch.sigmoid(self.log_alpha - learned.BETA * float(np.log(-learned.GAMMA / learned.ZETA))).sum()


# ---- neutral parameters: load, export, crop, prune -----------------------------------------------

def export_params(layer: MaskedConv2d | L0Gate | nn.Conv2d | nn.Linear) -> dict[str, np.ndarray]:
    """The layer's parameters by name ("weight", "bias", "log_radius", "log_alpha"), neutral layout."""
    return {name: p.detach().cpu().numpy() for name, p in layer.named_parameters()}


@torch.no_grad()
def load_params(layer, params: dict[str, np.ndarray]) -> None:
    for name, p in layer.named_parameters():
        p.copy_(torch.from_numpy(np.asarray(params[name])))


@torch.no_grad()
def crop(layer: MaskedConv2d, k: int | None = None, threshold: float = 0.0) -> dict[str, np.ndarray]:
    """Plain weights {"weight", "bias"} of size k (default: the effective size at `threshold`)."""
    mask = layer.mask().cpu().numpy()
    k = learned.effective_size(mask, threshold) if k is None else k
    return {"weight": learned.crop(layer.weight.cpu().numpy(), mask, k), "bias": layer.bias.cpu().numpy().copy()}


@torch.no_grad()
def prune(conv: dict[str, np.ndarray], gate: L0Gate, next_weight: np.ndarray, pieces: int = 1):
    """Fold `gate`'s test-time gates into plain conv weights {"weight", "bias"}, drop the closed maps and
    the next layer's matching inputs. Returns (conv weights, next_weight, kept map indices)."""
    weight, bias, next_weight, kept = learned.prune(
        conv["weight"], conv["bias"], test_gate(gate.log_alpha).cpu().numpy(), next_weight, pieces)
    return {"weight": weight, "bias": bias}, next_weight, kept


def plain_conv(params: dict[str, np.ndarray]) -> nn.Conv2d:
    """An nn.Conv2d ('same' padding) holding cropped or pruned neutral weights."""
    out_channels, in_channels, k, _ = params["weight"].shape
    conv = nn.Conv2d(in_channels, out_channels, k, padding=k // 2)
    load_params(conv, params)
    return conv

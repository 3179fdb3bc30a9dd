"""Learned kernel size (masked convolution) and learned filter count (L0 gates): maths, gradients,
the same layers in both frameworks, gate statistics, and exact cropping and pruning."""
import re

import numpy as np
import pytest

from convbench import learned, spec
from convbench.spec import SpecError


def rel_err(a, b):
    return np.abs(a - b).max() / max(np.abs(a).max(), 1e-12)


@pytest.fixture(scope="module")
def pt(torch_backend):
    from convbench.backends import torch_learned

    return torch_learned


@pytest.fixture(scope="module")
def tfl(tf_backend):
    from convbench.backends import tf_learned

    return tf_learned


def nhwc(x):
    return x.transpose(0, 2, 3, 1)


def nchw(x):
    return x.transpose(0, 3, 1, 2)


# ---- the neutral maths ---------------------------------------------------------------------------

def test_distance_is_chebyshev_so_every_level_set_is_a_centred_square():
    r = learned.distance_grid(5)
    assert r[2, 2] == 0 and r[0, 0] == r[0, 2] == r[2, 4] == 2 and r[1, 3] == 1
    for rho in range(3):
        inside = np.argwhere(r <= rho)
        assert len(inside) == (2 * rho + 1) ** 2
        assert inside.min() == 2 - rho and inside.max() == 2 + rho


def test_ramp_mask_formula():
    r = learned.distance_grid(7)
    m = learned.ramp_mask(r, 1.4, ramp=1.0)
    np.testing.assert_allclose(m[r <= 1], 1.0)
    np.testing.assert_allclose(m[r == 2], 0.4, rtol=1e-6)
    np.testing.assert_array_equal(m[r == 3], 0.0)
    wide = learned.ramp_mask(r, 0.5, ramp=2.0)  # 1 up to r = 0.5, then (2.5 - r) / 2
    np.testing.assert_allclose([wide[3, 3], wide[3, 4], wide[3, 5], wide[3, 6]], [1.0, 0.75, 0.25, 0.0])
    per_filter = learned.ramp_mask(r, [0.0, 3.0], ramp=1.0)
    assert per_filter.shape == (2, 1, 7, 7) and per_filter[0].sum() == 1 and per_filter[1].min() == 1


@pytest.mark.parametrize("radius, threshold, k", [
    (1.0, 0.0, 3), (1.0, 0.5, 3),  # the ring at r = 2 has mask exactly 0
    (1.4, 0.0, 5), (1.4, 0.3, 5), (1.4, 0.45, 3), (1.4, 0.5, 3),  # the ring at r = 2 has mask 0.4
    (0.0, 0.0, 1), (-0.5, 0.0, 1), (-3.0, 0.0, 1),  # a dead mask keeps the centre tap
    (2.2, 0.0, 7), (9.0, 0.5, 7),  # saturated: the whole 7 x 7
])
def test_effective_size(radius, threshold, k):
    mask = learned.ramp_mask(learned.distance_grid(7), radius)
    assert learned.effective_size(mask, threshold) == k


def test_effective_size_of_per_filter_radii_is_the_largest():
    mask = learned.ramp_mask(learned.distance_grid(9), [0.2, 2.0, 1.0])
    assert learned.effective_size(mask) == 5  # radius 2.0: ring 3 at mask 0
    assert learned.effective_size(mask, 0.5) == 5


def test_test_time_gate_and_l0_closed_forms():
    la = np.array([-10.0, np.log(1 / 11), -1.0, 0.0, 2.0, 10.0])
    np.testing.assert_allclose(learned.test_gate(la), np.clip(1 / (1 + np.exp(-la)) * 1.2 - 0.1, 0, 1))
    assert learned.test_gate(la)[0] == learned.test_gate(la[1]) == 0 and learned.test_gate(la)[-1] == 1
    np.testing.assert_allclose(learned.l0_penalty(la), 1 - learned.gate_cdf(0.0, la))  # P(gate != 0)
    np.testing.assert_allclose(learned.l0_penalty(0.0), 1 / (1 + (1 / 11) ** (2 / 3)))


# ---- gradients: torch gradcheck (float64), TF finite differences (float64) ------------------------

def masked_conv_inputs(per_filter=False, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, 3, 6, 6))
    w = rng.normal(size=(4, 3, 5, 5))
    b = rng.normal(size=4)
    radius = np.array([0.3, 1.3, 1.6, 0.7]) if per_filter else np.array([1.3])  # off the ramp's kinks
    return [v.astype(dtype) for v in (x, w, b, radius)]


GATE_LOG_ALPHA = np.array([-1.5, -0.3, 0.2, 0.9, 2.5, 4.0])
GATE_NOISE = np.array([0.9, 0.15, 0.55, 0.3, 0.03, 0.95])  # a mix of gates inside (0, 1) and clipped


def test_torch_gradcheck(pt):
    import torch

    distance = torch.from_numpy(learned.distance_grid(5)).double()
    radius = torch.tensor([0.3, 1.3, 1.7], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: pt.ramp_mask(distance, z, 1.0), (radius,))
    assert torch.autograd.gradcheck(lambda z: pt.ramp_mask(distance, z, 1.5), (radius,))
    noise = torch.from_numpy(GATE_NOISE)
    log_alpha = torch.from_numpy(GATE_LOG_ALPHA).requires_grad_(True)
    gate = pt.hard_concrete(log_alpha, noise)
    assert 0 < (gate > 0).sum() < len(gate) and (gate == 1).any()  # some gates clipped, some in between
    assert torch.autograd.gradcheck(lambda la: pt.hard_concrete(la, noise), (log_alpha,))
    assert torch.autograd.gradcheck(pt.test_gate, (log_alpha,))
    for per_filter in (False, True):
        x, w, b, z = (torch.from_numpy(v).requires_grad_(True) for v in masked_conv_inputs(per_filter))
        assert torch.autograd.gradcheck(lambda *a: pt.masked_conv2d(*a, distance), (x, w, b, z))


def test_tf_finite_differences(tfl):
    import tensorflow as tf

    def check(f, *args):
        theoretical, numerical = tf.test.compute_gradient(f, [tf.constant(a) for a in args], delta=1e-5)
        for t, n in zip(theoretical, numerical):
            np.testing.assert_allclose(t, n, rtol=1e-6, atol=1e-7)

    distance = learned.distance_grid(5)
    check(lambda z: tfl.ramp_mask(distance, z, 1.0), np.array([0.3, 1.3, 1.7]))
    check(lambda z: tfl.ramp_mask(distance, z, 1.5), np.array([0.3, 1.3, 1.7]))
    check(lambda la: tfl.hard_concrete(la, GATE_NOISE), GATE_LOG_ALPHA)
    check(tfl.test_gate, GATE_LOG_ALPHA)
    for per_filter in (False, True):
        x, w, b, z = masked_conv_inputs(per_filter)
        check(lambda x, w, b, z: tfl.masked_conv2d(x, w, b, z, distance),
              nhwc(x), w.transpose(2, 3, 1, 0), b, z)


# ---- the same layers in both frameworks ----------------------------------------------------------

def masked_layers(pt, tfl, params, ramp=1.0, per_filter=False):
    import torch

    out_channels, in_channels, k, _ = params["weight"].shape
    layer_pt = pt.MaskedConv2d(in_channels, out_channels, k, 1.0, ramp, per_filter)
    pt.load_params(layer_pt, params)
    layer_tf = tfl.MaskedConv2D(out_channels, k, 1.0, ramp, per_filter)
    layer_tf.build((None, None, None, in_channels))
    tfl.load_params(layer_tf, params)
    for name, value in params.items():
        np.testing.assert_array_equal(tfl.export_params(layer_tf)[name], value)
        np.testing.assert_array_equal(pt.export_params(layer_pt)[name], value)
    assert isinstance(layer_pt.penalty(), torch.Tensor)
    return layer_pt, layer_tf


@pytest.mark.parametrize("per_filter, ramp", [(False, 1.0), (True, 1.0), (True, 1.5)])
def test_masked_conv_outputs_and_gradients_agree(pt, tfl, per_filter, ramp):
    import tensorflow as tf
    import torch

    x, w, b, z = masked_conv_inputs(per_filter, seed=1, dtype=np.float32)
    x = np.random.default_rng(2).normal(size=(2, 3, 9, 9)).astype(np.float32)
    layer_pt, layer_tf = masked_layers(pt, tfl, {"weight": w, "bias": b, "log_radius": np.log(z)}, ramp, per_filter)
    up = np.random.default_rng(3).normal(size=(2, 4, 9, 9)).astype(np.float32)  # upstream gradient

    x_pt = torch.from_numpy(x).requires_grad_(True)
    out_pt = layer_pt(x_pt)
    loss_pt = (out_pt * torch.from_numpy(up)).sum() + 0.1 * layer_pt.penalty()
    grads_pt = torch.autograd.grad(loss_pt, [x_pt, layer_pt.weight, layer_pt.bias, layer_pt.log_radius])

    x_tf = tf.constant(nhwc(x))
    with tf.GradientTape() as tape:
        tape.watch(x_tf)
        out_tf = layer_tf(x_tf)
        loss_tf = tf.reduce_sum(out_tf * nhwc(up)) + 0.1 * layer_tf.penalty()
    grads_tf = tape.gradient(loss_tf, [x_tf, layer_tf.kernel, layer_tf.bias, layer_tf.log_radius])

    assert rel_err(out_pt.detach().numpy(), nchw(out_tf.numpy())) < 1e-4
    grads_tf = [nchw(grads_tf[0].numpy()), grads_tf[1].numpy().transpose(3, 2, 0, 1),
                *(g.numpy() for g in grads_tf[2:])]
    for name, g_pt, g_tf in zip(["input", "weight", "bias", "log_radius"], grads_pt, grads_tf):
        assert g_pt.shape == g_tf.shape, name
        assert rel_err(g_pt.numpy(), g_tf) < 1e-4, name
    assert np.abs(grads_pt[3].numpy()).min() > 0  # the loss reaches every radius
    np.testing.assert_allclose(layer_pt.penalty().item(), float(layer_tf.penalty()), rtol=1e-6)
    np.testing.assert_allclose(layer_pt.penalty().item(), z.mean(), rtol=1e-6)


def gate_layers(pt, tfl, log_alpha):
    layer_pt = pt.L0Gate(len(log_alpha), 1.0)
    pt.load_params(layer_pt, {"log_alpha": log_alpha})
    layer_tf = tfl.L0Gate(len(log_alpha), 1.0)
    layer_tf.build((None, None, None, len(log_alpha)))
    tfl.load_params(layer_tf, {"log_alpha": log_alpha})
    return layer_pt, layer_tf


def test_gated_outputs_agree_with_fixed_noise_and_at_test_time(pt, tfl):
    import tensorflow as tf
    import torch

    log_alpha, noise = GATE_LOG_ALPHA.astype(np.float32), GATE_NOISE.astype(np.float32)
    layer_pt, layer_tf = gate_layers(pt, tfl, log_alpha)
    x = np.random.default_rng(0).normal(size=(3, len(log_alpha), 4, 4)).astype(np.float32)
    expected_train = x * learned.sample_gate(log_alpha, noise)[None, :, None, None]
    expected_test = x * learned.test_gate(log_alpha)[None, :, None, None]

    layer_pt.train()
    out_pt = layer_pt(torch.from_numpy(x), noise=torch.from_numpy(noise))
    (grad_pt,) = torch.autograd.grad((out_pt * torch.from_numpy(x)).sum() + layer_pt.penalty(), [layer_pt.log_alpha])
    with tf.GradientTape() as tape:
        out_tf = layer_tf(tf.constant(nhwc(x)), training=True, noise=tf.constant(noise))
        loss_tf = tf.reduce_sum(out_tf * nhwc(x)) + layer_tf.penalty()
    grad_tf = tape.gradient(loss_tf, layer_tf.log_alpha).numpy()
    np.testing.assert_allclose(out_pt.detach().numpy(), expected_train, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(nchw(out_tf.numpy()), expected_train, rtol=1e-5, atol=1e-6)
    assert rel_err(grad_pt.numpy(), grad_tf) < 1e-4

    layer_pt.eval()
    np.testing.assert_allclose(layer_pt(torch.from_numpy(x)).detach().numpy(), expected_test, rtol=1e-6)
    np.testing.assert_allclose(nchw(layer_tf(tf.constant(nhwc(x)), training=False).numpy()), expected_test, rtol=1e-6)
    expected_l0 = learned.l0_penalty(log_alpha).sum()
    np.testing.assert_allclose([layer_pt.penalty().item(), float(layer_tf.penalty())], expected_l0, rtol=1e-6)


def test_gate_noise_is_reproducible(pt, tfl):
    import torch

    layer_pt, _ = gate_layers(pt, tfl, np.zeros(5, np.float32))
    draws = []
    for _ in range(2):
        layer_pt.generator = torch.Generator().manual_seed(7)
        draws.append(layer_pt.gate().detach().numpy())
    np.testing.assert_array_equal(*draws)
    draws = []
    for _ in range(2):
        layer_tf = tfl.L0Gate(5, 0.0, seed=7)
        layer_tf.build((None, 5))
        draws.append(layer_tf.gate(training=True).numpy())
    np.testing.assert_array_equal(*draws)
    assert layer_tf.gate(training=True).numpy().tolist() != draws[0].tolist()


# ---- gate statistics -----------------------------------------------------------------------------

def hard_concrete_mean(log_alpha):
    """E[gate] = integral over [0, 1] of P(gate > x), by the trapezoid rule on the closed-form CDF."""
    x = np.linspace(0.0, 1.0, 200_001)
    return np.trapezoid(1 - learned.gate_cdf(x, log_alpha), x)


@pytest.mark.parametrize("framework", ["torch", "tensorflow", "numpy"])
def test_sampled_gates_follow_the_hard_concrete_distribution(pt, tfl, framework):
    import tensorflow as tf
    import torch

    log_alpha = np.array([-3.0, -1.0, 0.0, 0.5, 2.0], np.float32)
    n = 200_000
    if framework == "torch":
        gates = pt.hard_concrete(torch.from_numpy(log_alpha), torch.rand(n, len(log_alpha),
                                 generator=torch.Generator().manual_seed(0))).numpy()
    elif framework == "tensorflow":
        noise = tf.random.stateless_uniform((n, len(log_alpha)), (0, 1))
        gates = tfl.hard_concrete(tf.constant(log_alpha), noise).numpy()
    else:
        gates = learned.sample_gate(log_alpha, np.random.default_rng(0).uniform(size=(n, len(log_alpha))))
    assert gates.min() == 0 and gates.max() == 1
    np.testing.assert_allclose(gates.mean(axis=0), [hard_concrete_mean(a) for a in log_alpha], atol=0.005)
    np.testing.assert_allclose((gates > 0).mean(axis=0), learned.l0_penalty(log_alpha), atol=0.005)
    np.testing.assert_allclose((gates == 1).mean(axis=0), 1 - learned.gate_cdf(1.0, log_alpha), atol=0.005)


# ---- cropping and pruning ------------------------------------------------------------------------

def random_masked_params(radius, in_channels=3, out_channels=4, k=7, seed=0):
    rng = np.random.default_rng(seed)
    return {"weight": rng.normal(size=(out_channels, in_channels, k, k)).astype(np.float32),
            "bias": rng.normal(size=out_channels).astype(np.float32),
            "log_radius": np.log(np.asarray(radius, np.float32).reshape(-1))}


@pytest.mark.parametrize("radius, threshold, k", [
    ([1.0], 0.5, 3),  # mask exactly 0 outside 3 x 3
    ([1.4], 0.0, 5),  # threshold 0 keeps the ring at mask 0.4
    ([0.5, 2.0, 1.2, -2.0], 0.0, 5),  # per filter, one of them dead
])
def test_crop_preserves_outputs_when_the_mask_is_zero_outside(pt, tfl, radius, threshold, k):
    import tensorflow as tf
    import torch

    params = random_masked_params(radius)
    layer_pt, layer_tf = masked_layers(pt, tfl, params, per_filter=len(radius) > 1)
    x = np.random.default_rng(1).normal(size=(2, 3, 10, 10)).astype(np.float32)
    cropped_pt, cropped_tf = pt.crop(layer_pt, threshold=threshold), tfl.crop(layer_tf, threshold=threshold)
    assert cropped_pt["weight"].shape[-1] == cropped_tf["weight"].shape[-1] == k
    np.testing.assert_allclose(cropped_pt["weight"], cropped_tf["weight"], rtol=1e-6)
    with torch.no_grad():
        masked, plain = layer_pt(torch.from_numpy(x)).numpy(), pt.plain_conv(cropped_pt)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(plain, masked, atol=1e-5, rtol=1e-5)
    masked = nchw(layer_tf(tf.constant(nhwc(x))).numpy())
    plain = nchw(tfl.plain_conv(cropped_tf)(tf.constant(nhwc(x))).numpy())
    np.testing.assert_allclose(plain, masked, atol=1e-5, rtol=1e-5)


def test_crop_above_a_threshold_drops_taps_by_a_bounded_amount(pt):
    """The ring at r = 2 carries mask 0.4 <= threshold 0.5: crop drops it, and the outputs change,
    by no more than those taps can contribute."""
    import torch

    params = random_masked_params([1.4])
    layer = pt.MaskedConv2d(3, 4, 7, 1.0)
    pt.load_params(layer, params)
    x = np.random.default_rng(1).normal(size=(2, 3, 10, 10)).astype(np.float32)
    cropped = pt.crop(layer, threshold=0.5)
    assert cropped["weight"].shape[-1] == 3
    with torch.no_grad():
        diff = np.abs(layer(torch.from_numpy(x)).numpy() - pt.plain_conv(cropped)(torch.from_numpy(x)).numpy()).max()
    bound = learned.crop_error_bound(params["weight"], layer.mask().detach().numpy(), 3, np.abs(x).max())
    assert 1e-2 < diff <= bound


def test_crop_rejects_sizes_that_do_not_fit():
    w, m = np.ones((1, 1, 5, 5)), np.ones((1, 1, 5, 5))
    for k in (0, 2, 7):
        with pytest.raises(ValueError, match="odd and in"):
            learned.crop(w, m, k)


PRUNE_LOG_ALPHA = np.array([-5.0, 3.0, 0.5, -2.5, 10.0, 0.0], np.float32)  # maps 0 and 3 closed at test time


def gated_two_layer_params(pieces, head, seed=0):
    rng = np.random.default_rng(seed)
    maps = len(PRUNE_LOG_ALPHA)
    return {"conv": random_masked_params([1.0, 1.6, 0.4, 2.0, 1.0, 0.8] * pieces, 3, maps * pieces, 7, seed),
            "log_alpha": PRUNE_LOG_ALPHA,
            "next": {"weight": rng.normal(size=(5, maps) if head else (5, maps, 3, 3)).astype(np.float32),
                     "bias": rng.normal(size=5).astype(np.float32)}}


@pytest.mark.parametrize("pieces, head", [(1, False), (2, False), (1, True), (3, True)])
def test_prune_preserves_outputs(pt, tfl, torch_backend, tf_backend, pieces, head):
    """masked conv -> activation -> gate -> (next conv | max-pool, global mean, linear head), at test
    time; against crop, prune and plain layers. Both frameworks, from the same neutral weights."""
    import keras
    import tensorflow as tf
    import torch
    import torch.nn.functional as F
    from torch import nn

    p = gated_two_layer_params(pieces, head)
    assert (learned.test_gate(PRUNE_LOG_ALPHA) == 0).sum() == 2
    x = np.random.default_rng(1).normal(size=(2, 3, 8, 8)).astype(np.float32)
    maps = len(PRUNE_LOG_ALPHA)

    def activation_pt(v, k):
        return torch.relu(v) if k == 1 else torch_backend.maxout(v, k)

    def activation_tf(v, k):
        return tf.nn.relu(v) if k == 1 else tf_backend.maxout(v, k)

    conv = pt.MaskedConv2d(3, maps * pieces, 7, 1.0, per_filter=True)
    pt.load_params(conv, p["conv"])
    gate = pt.L0Gate(maps, 1.0).eval()
    pt.load_params(gate, {"log_alpha": p["log_alpha"]})
    nxt = nn.Linear(maps, 5) if head else pt.plain_conv(p["next"])
    pt.load_params(nxt, p["next"])
    pruned_conv, next_weight, kept = pt.prune(pt.crop(conv), gate, p["next"]["weight"], pieces)
    assert kept.tolist() == [1, 2, 4, 5] and pruned_conv["weight"].shape == (4 * pieces, 3, 5, 5)
    small_conv = pt.plain_conv(pruned_conv)
    small_next = nn.Linear(4, 5) if head else pt.plain_conv({**p["next"], "weight": next_weight})
    pt.load_params(small_next, {**p["next"], "weight": next_weight})

    def tail_pt(v, layer):
        return layer(F.max_pool2d(v, 2).mean(dim=(2, 3))) if head else layer(v)

    with torch.no_grad():
        xt = torch.from_numpy(x)
        gated = tail_pt(gate(activation_pt(conv(xt), pieces)), nxt).numpy()
        pruned = tail_pt(activation_pt(small_conv(xt), pieces), small_next).numpy()
    np.testing.assert_allclose(pruned, gated, atol=1e-5, rtol=1e-5)

    conv_tf = tfl.MaskedConv2D(maps * pieces, 7, 1.0, per_filter=True)
    conv_tf.build((None, None, None, 3))
    tfl.load_params(conv_tf, p["conv"])
    gate_tf = tfl.L0Gate(maps, 1.0)
    gate_tf.build((None, maps))
    tfl.load_params(gate_tf, {"log_alpha": p["log_alpha"]})
    if head:
        nxt_tf, small_next_tf = keras.layers.Dense(5), keras.layers.Dense(5)
        nxt_tf.build((None, maps))
        small_next_tf.build((None, len(kept)))
    else:
        nxt_tf, small_next_tf = tfl.plain_conv(p["next"]), tfl.plain_conv({**p["next"], "weight": next_weight})
    tfl.load_params(nxt_tf, p["next"])
    pruned_tf_conv, next_weight_tf, kept_tf = tfl.prune(tfl.crop(conv_tf), gate_tf, p["next"]["weight"], pieces)
    np.testing.assert_array_equal(kept_tf, kept)
    np.testing.assert_allclose(next_weight_tf, next_weight)
    np.testing.assert_allclose(pruned_tf_conv["weight"], pruned_conv["weight"], rtol=1e-6)
    tfl.load_params(small_next_tf, {**p["next"], "weight": next_weight_tf})
    small_conv_tf = tfl.plain_conv(pruned_tf_conv)

    def tail_tf(v, layer):
        if head:
            return layer(tf.reduce_mean(tf.nn.max_pool2d(v, 2, 2, "VALID"), axis=(1, 2)))
        return nchw(layer(v).numpy())

    xt = tf.constant(nhwc(x))
    gated_tf = np.asarray(tail_tf(gate_tf(activation_tf(conv_tf(xt), pieces), training=False), nxt_tf))
    pruned_tf = np.asarray(tail_tf(activation_tf(small_conv_tf(xt), pieces), small_next_tf))
    np.testing.assert_allclose(pruned_tf, gated_tf, atol=1e-5, rtol=1e-5)
    assert rel_err(gated, gated_tf) < 1e-4


def test_prune_rejects_gates_that_do_not_fit():
    with pytest.raises(ValueError, match="do not fit"):
        learned.prune(np.ones((6, 1, 3, 3)), np.ones(6), np.ones(4), np.ones((2, 3)), pieces=2)


def test_radius_beyond_the_kernel_saturates_the_mask(pt):
    """Documented behaviour: no clamp on the radius. Past (K-1)/2 the mask is 1 everywhere and only the
    penalty moves the radius."""
    import torch

    layer = pt.MaskedConv2d(1, 1, 5, 2.0)
    with torch.no_grad():
        layer.log_radius.fill_(float(np.log(4.0)))
    assert layer.mask().min().item() == 1.0
    loss = layer(torch.ones(1, 1, 6, 6)).sum()
    (grad,) = torch.autograd.grad(loss, [layer.log_radius])
    assert grad.item() == 0.0


# ---- settings ------------------------------------------------------------------------------------

WHERE = "architectures.learned.blocks[0]"


@pytest.mark.parametrize("settings, field, message", [
    ({"max_kernel": 6, "init_radius": 1.0}, "max_kernel", "must be odd"),
    ({"max_kernel": 0, "init_radius": 0.0}, "max_kernel", ">= 1"),
    ({"max_kernel": 7.0, "init_radius": 1.0}, "max_kernel", "integer"),
    ({"max_kernel": 5, "init_radius": 2.5}, "init_radius", "fits a 5x5 kernel"),
    ({"max_kernel": 5, "init_radius": 1.5, "ramp": 2.0}, "init_radius", "<= \\(max_kernel \\+ 1\\) / 2 - ramp = 1"),
    ({"max_kernel": 5, "init_radius": -1.0}, "init_radius", "> 0"),
    ({"max_kernel": 5, "init_radius": 0.0}, "init_radius", "> 0 \\(it is learned on a log scale\\)"),
    ({"max_kernel": 5, "init_radius": 1.0, "ramp": 0.0}, "ramp", "> 0"),
    ({"max_kernel": 5, "init_radius": 1.0, "threshold": 1.0}, "threshold", "in \\[0, 1\\)"),
    ({"max_kernel": 5, "init_radius": 1.0, "radius_penalty": -0.1}, "radius_penalty", ">= 0"),
])
def test_mask_settings_errors_name_the_field(settings, field, message):
    with pytest.raises(SpecError, match=f"^{re.escape(WHERE)}\\.{field}: .*{message}"):
        spec.validate_mask(WHERE, **settings)


def test_valid_mask_settings_pass():
    spec.validate_mask(WHERE, max_kernel=7, init_radius=3.0)  # ramp 1: the whole 7 x 7 at the start
    spec.validate_mask(WHERE, max_kernel=3, init_radius=0.01)  # a 3x3 whose outer ring starts nearly off
    spec.validate_mask(WHERE, max_kernel=9, init_radius=2.5, ramp=2.0, threshold=0.5, radius_penalty=0.01)


@pytest.mark.parametrize("settings, field", [
    ({"init_log_alpha": -3.0}, "init_log_alpha"),
    ({"init_log_alpha": float("nan")}, "init_log_alpha"),
    ({"init_log_alpha": 1.0, "l0_penalty": -1.0}, "l0_penalty"),
])
def test_gate_settings_errors_name_the_field(settings, field):
    with pytest.raises(ValueError, match=f"blocks.0..{field}: "):
        spec.validate_gate(WHERE, **settings)
    spec.validate_gate(WHERE, init_log_alpha=2.0, l0_penalty=1e-3)


def test_layers_validate_their_settings(pt, tfl):
    with pytest.raises(ValueError, match="max_kernel: must be odd"):
        pt.MaskedConv2d(1, 1, 4, 1.0)
    with pytest.raises(ValueError, match="init_radius"):
        tfl.MaskedConv2D(1, 3, 2.0)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_layers_run_under_torchscript_and_xla(pt, tfl):
    """The graph engines of both backends take the layers as they are (torch.compile is left to the
    pipeline's own tests: its first compile takes ~30 s)."""
    import tensorflow as tf
    import torch

    params = random_masked_params([1.3, 0.6, 2.1, 1.0], out_channels=4)
    x = np.random.default_rng(0).normal(size=(2, 3, 8, 8)).astype(np.float32)
    noise = np.array([0.2, 0.7, 0.5, 0.9], np.float32)
    conv, gate = pt.MaskedConv2d(3, 4, 7, 1.0, per_filter=True), pt.L0Gate(4, 1.0)
    pt.load_params(conv, params)
    scripted_conv, scripted_gate = torch.jit.script(conv), torch.jit.script(gate)
    with torch.no_grad():
        xt, nt = torch.from_numpy(x), torch.from_numpy(noise)
        np.testing.assert_allclose(scripted_gate(scripted_conv(xt), nt).numpy(), gate(conv(xt), nt).numpy(), rtol=1e-6)
        gate.eval(), scripted_gate.eval()  # a ScriptModule shares the parameters, not the training flag
        np.testing.assert_allclose(scripted_gate(scripted_conv(xt)).numpy(), gate(conv(xt)).numpy(), rtol=1e-6)

    conv_tf, gate_tf = tfl.MaskedConv2D(4, 7, 1.0, per_filter=True), tfl.L0Gate(4, 1.0)
    conv_tf.build((None, None, None, 3))
    gate_tf.build((None, 4))
    tfl.load_params(conv_tf, params)
    run = tf.function(lambda v, u, training: gate_tf(conv_tf(v), training=training, noise=u), jit_compile=True)
    xt, nt = tf.constant(nhwc(x)), tf.constant(noise)
    for training in (True, False):
        eager = gate_tf(conv_tf(xt), training=training, noise=nt).numpy()
        np.testing.assert_allclose(run(xt, nt, training).numpy(), eager, rtol=1e-5, atol=1e-6)


def test_shrink_gives_a_plain_spec_with_the_learned_nets_outputs(torch_backend, tf_backend):
    from conftest import batch, make_spec

    from convbench.learned import shrink
    from convbench.spec import init_weights, param_count

    spec = make_spec({"width": 8, "kernel": 7, "init_radius": 1.5, "gates": True},
                     {"width": 12, "kernel": 5, "activation": "maxout", "pieces": 2, "init_radius": 0.5, "gates": True})
    weights = init_weights(spec, seed=0)
    weights["blocks.0.gate.log_alpha"][[1, 4]] = -9.0  # two maps of the first block closed at test time
    weights["blocks.1.gate.log_alpha"][2] = -9.0
    plain, plain_weights, kept = shrink(spec, weights)
    assert kept == [(5, 6), (3, 5)]  # the ramp ends at radius + 1: 2.5 keeps 5x5, 1.5 keeps 3x3
    assert not any(b.learned for b in plain.blocks) and param_count(plain) == sum(w.size for w in plain_weights.values())
    x, y = batch(size=16)
    for backend in (torch_backend, tf_backend):
        learned_net = backend.Trainer(spec, weights, 0.1, 0.9)
        shrunk_net = backend.Trainer(plain, plain_weights, 0.1, 0.9)
        np.testing.assert_allclose(learned_net.logits(learned_net.to_device(x, y)[0]),
                                   shrunk_net.logits(shrunk_net.to_device(x, y)[0]), rtol=1e-5, atol=1e-5)


# ---- the tracking property ----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_learned_field_finds_the_planted_scale_on_untuned_seeds(tmp_path):
    """The default config's tracking study, on seeds that no setting was tuned on (30, 31) and at two scales whose
    smallest covering fields differ: every run shrinks to within one kernel step of that field (never to the largest
    field the masks allow), and the shrunk network still does the task."""
    from pathlib import Path

    from convbench import config
    from convbench.analysis.learned.tracking import step
    from convbench.run import run_cells
    from convbench.spec import covering_field
    conf = config.read(Path(__file__).resolve().parents[1] / "config" / "config.yaml")
    conf |= {"frameworks": ["torch"], "studies": {"tracking": {
        **conf["studies"]["tracking"], "train": {**conf["studies"]["tracking"]["train"], "seeds": [30, 31]}}}}
    cells = [c for c in config.check(conf) if c.study == "tracking"]
    assert {c.settings["data"]["scale"] for c in cells} == set(conf["studies"]["tracking"]["scales"])
    for record in run_cells(cells, tmp_path, log=lambda _: None):
        assert record["status"] == "ok", record["error"]
        cell = cells[[c.id for c in cells].index(record["cell_id"])]
        shrunk = spec.ArchSpec.from_dict("shrunk", record["learned"]["shrunk_arch"], 1, 2)
        covering = covering_field(cell.arch, cell.settings["data"]["scale"])
        assert record["training"]["learning_started_epoch"] is not None, cell.id
        assert abs(spec.field(shrunk) - covering) <= step(tuple(b.kernel for b in cell.arch.blocks)), cell.id
        assert spec.field(shrunk) < spec.field(cell.arch), cell.id
        assert record["learned"]["test_accuracy"] > 0.8, cell.id


def test_the_covering_field_is_a_staircase_in_the_scale():
    """The smallest field whose last convolution sees both marks wherever they fall: for two blocks with 2x2 pools,
    that convolution's field k1 + 2 k2 - 1 must reach scale + 1, so the covering field is scale + 3 rounded up to an
    even field; a hand-picked net has one field, which covers or not."""
    learns = spec.ArchSpec.from_dict("learns", {"blocks": [{"width": 4, "kernel": 9, "init_radius": 3.0},
                                                           {"width": 4, "kernel": 9, "init_radius": 3.0}]}, 1, 2)
    assert [spec.covering_field(learns, s) for s in (7, 8, 11, 15)] == [10, 12, 14, 18]
    assert spec.covering_field(learns, 30) is None  # beyond 9x9 in both blocks (field 28)
    k5 = spec.ArchSpec.from_dict("k5", {"blocks": [{"width": 4, "kernel": 5}, {"width": 4, "kernel": 5}]}, 1, 2)
    assert spec.covering_field(k5, 11) == 16 and spec.covering_field(k5, 14) is None  # 5x5's last conv sees 14


def test_a_study_with_scales_trains_at_each_of_them():
    from pathlib import Path

    from convbench import config
    conf = config.read(Path(__file__).resolve().parents[1] / "config" / "config.yaml")
    study = {**conf["studies"]["tracking"], "scales": [5, 9]}
    cells = [c for c in config.check({**conf, "studies": {"tracking": study}}) if c.study == "tracking"]
    scales = {c.id: c.settings["data"]["scale"] for c in cells}
    assert sorted(set(scales.values())) == [5, 9] and len(scales) == len(cells)  # ids differ by scale
    assert all(cell_id.endswith(f"_p{s}_train") for cell_id, s in scales.items())
    with pytest.raises(config.ConfigError, match="data.scale: must fit the 16x16 images"):
        config.check({**conf, "studies": {"tracking": {**study, "scales": [40]}}})

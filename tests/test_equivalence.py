"""The same spec and weights give the same network in PyTorch and in TensorFlow."""
import numpy as np
import pytest
from conftest import batch, make_spec

from convbench.spec import init_weights

BLOCKS = {
    "relu-k1": [{"width": 8, "kernel": 1}],
    "relu-k3": [{"width": 8, "kernel": 3}, {"width": 12, "kernel": 3}],
    "relu-k5": [{"width": 8, "kernel": 5}],
    "relu-k7-nopool": [{"width": 6, "kernel": 7, "pool": 1}],
    "relu-stack2": [{"width": 8, "kernel": 3, "depth": 2}],
    "relu-stack3": [{"width": 8, "kernel": 3, "depth": 3}],
    "maxout2": [{"width": 8, "kernel": 3, "activation": "maxout", "pieces": 2}],
    "maxout3-stack2": [{"width": 12, "kernel": 3, "depth": 2, "activation": "maxout", "pieces": 3}],
    "maxout4-k5": [{"width": 16, "kernel": 5, "activation": "maxout", "pieces": 4}, {"width": 8, "kernel": 3}],
}


def rel_err(a, b):
    return np.abs(a - b).max() / max(np.abs(a).max(), 1e-12)


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_outputs_and_gradients_agree(name, torch_backend, tf_backend):
    spec = make_spec(*BLOCKS[name])
    weights = init_weights(spec, seed=3)
    x, y = batch()
    pt = torch_backend.Trainer(spec, weights, 0.1, 0.9)
    tf = tf_backend.Trainer(spec, weights, 0.1, 0.9)
    assert rel_err(pt.logits(pt.to_device(x, y)[0]), tf.logits(tf.to_device(x, y)[0])) < 1e-4
    grads_pt, grads_tf = pt.gradients(*pt.to_device(x, y)), tf.gradients(*tf.to_device(x, y))
    assert grads_pt.keys() == grads_tf.keys() == {*weights, "input", "loss"}
    for key in grads_pt:
        assert grads_pt[key].shape == grads_tf[key].shape, key
        assert rel_err(grads_pt[key], grads_tf[key]) < 1e-4, key


def test_weights_round_trip_through_both_frameworks(torch_backend, tf_backend):
    spec = make_spec(*BLOCKS["maxout3-stack2"], {"width": 4, "kernel": 5})
    weights = init_weights(spec, seed=0)
    via_torch = torch_backend.export_weights(torch_backend.build(spec, weights))
    via_tf = tf_backend.export_weights(tf_backend.build(spec, via_torch))
    for key, value in weights.items():
        np.testing.assert_array_equal(via_tf[key], value)


def test_sgd_momentum_training_steps_agree(torch_backend, tf_backend):
    spec = make_spec(*BLOCKS["relu-stack2"])
    weights = init_weights(spec, seed=0)
    x, y = batch(n=16)
    pt = torch_backend.Trainer(spec, weights, 0.05, 0.9)
    tf = tf_backend.Trainer(spec, weights, 0.05, 0.9)
    losses_pt = [pt.train_step(*pt.to_device(x, y)) for _ in range(4)]
    losses_tf = [tf.train_step(*tf.to_device(x, y)) for _ in range(4)]
    assert losses_pt[-1] < losses_pt[0]
    np.testing.assert_allclose(losses_pt, losses_tf, rtol=1e-4)
    trained_pt, trained_tf = torch_backend.export_weights(pt.model), tf_backend.export_weights(tf.model)
    for key in weights:
        assert rel_err(trained_pt[key], trained_tf[key]) < 1e-4, key


@pytest.mark.parametrize("pieces", [2, 3, 4])
def test_maxout_is_the_max_over_its_group(pieces, torch_backend, tf_backend):
    import tensorflow
    import torch

    maps = 3
    x = np.random.default_rng(pieces).normal(size=(2, pieces * maps, 5, 5)).astype(np.float32)
    # map j is the max over pieces i of channel i*maps + j (contiguous slabs)
    expected = np.stack([x[:, [i * maps + j for i in range(pieces)]].max(axis=1) for j in range(maps)], axis=1)
    out_torch = torch_backend.Maxout(pieces)(torch.from_numpy(x)).numpy()
    out_tf = tf_backend.Maxout(pieces)(tensorflow.constant(x.transpose(0, 2, 3, 1))).numpy().transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(out_torch, expected)
    np.testing.assert_array_equal(out_tf, expected)


def test_maxout_2_is_max_feature_map(torch_backend, tf_backend):
    import tensorflow
    import torch

    x = np.random.default_rng(0).normal(size=(2, 10, 4, 4)).astype(np.float32)
    mfm = np.maximum(x[:, :5], x[:, 5:])  # Lightened CNN: max of the two channel halves
    np.testing.assert_array_equal(torch_backend.Maxout(2)(torch.from_numpy(x)).numpy(), mfm)
    out_tf = tf_backend.Maxout(2)(tensorflow.constant(x.transpose(0, 2, 3, 1))).numpy()
    np.testing.assert_array_equal(out_tf.transpose(0, 3, 1, 2), mfm)


def test_maxout2_with_a_zeroed_piece_is_relu(torch_backend, tf_backend):
    """The textbook identity: max(w.x + b, 0) is maxout over two pieces, one of them fixed at zero."""
    maxout = make_spec({"width": 16, "kernel": 3, "activation": "maxout", "pieces": 2})
    relu = make_spec({"width": 8, "kernel": 3})
    weights = init_weights(maxout, seed=5)
    for key in ("blocks.0.convs.0.weight", "blocks.0.convs.0.bias"):
        weights[key][8:] = 0  # the second piece (channels 8..15) is identically zero
        weights[key][:8] += 0.1  # nonzero biases, so the identity is not about zero biases
    relu_weights = {**init_weights(relu, seed=5), **{k: v[:8] for k, v in weights.items() if k.startswith("blocks")}}
    relu_weights["head.weight"], relu_weights["head.bias"] = weights["head.weight"], weights["head.bias"]
    x, y = batch()
    for backend in (torch_backend, tf_backend):
        a = backend.Trainer(maxout, weights, 0.1, 0.9)
        b = backend.Trainer(relu, relu_weights, 0.1, 0.9)
        np.testing.assert_allclose(a.logits(a.to_device(x, y)[0]), b.logits(b.to_device(x, y)[0]), rtol=1e-5, atol=1e-6)


def test_torch_counts_the_bytes_autograd_saves(torch_backend):
    x, y = batch()

    def saved(width):
        spec = make_spec({"width": width})
        trainer = torch_backend.Trainer(spec, init_weights(spec, 0), 0.1, 0.9)
        return trainer.memory(*trainer.to_device(x, y))["saved_for_backward_bytes"]

    # the input batch is saved once; the maps after it grow with the width
    assert saved(16) - saved(8) > 0.9 * (saved(8) - x.nbytes)


LEARNED = [{"width": 8, "kernel": 5, "init_radius": 1.5, "radius_penalty": 0.1},
           {"width": 12, "kernel": 3, "activation": "maxout", "pieces": 2, "gates": True, "l0_penalty": 0.01}]


def test_learned_blocks_agree_across_frameworks(torch_backend, tf_backend):
    """Masked convolutions and gates: same test-time outputs; same gradients (radius included) where no
    gate is sampled."""
    spec = make_spec(*LEARNED)
    weights = init_weights(spec, seed=2)
    assert {"blocks.0.convs.0.log_radius", "blocks.1.gate.log_alpha"} <= weights.keys()
    x, y = batch(size=16)
    pt = torch_backend.Trainer(spec, weights, 0.1, 0.9)
    tf = tf_backend.Trainer(spec, weights, 0.1, 0.9)
    assert pt.num_params() == tf.num_params() == sum(w.size for w in weights.values())
    assert rel_err(pt.logits(pt.to_device(x, y)[0]), tf.logits(tf.to_device(x, y)[0])) < 1e-4
    masked_only = make_spec(LEARNED[0], {"width": 6, "kernel": 3})
    weights = init_weights(masked_only, seed=2)
    pt = torch_backend.Trainer(masked_only, weights, 0.1, 0.9)
    tf = tf_backend.Trainer(masked_only, weights, 0.1, 0.9)
    grads_pt, grads_tf = pt.gradients(*pt.to_device(x, y)), tf.gradients(*tf.to_device(x, y))
    for key in grads_pt:
        assert rel_err(grads_pt[key], grads_tf[key]) < 1e-4, key
    assert grads_pt["blocks.0.convs.0.log_radius"][0] != 0


def test_adam_training_steps_agree(torch_backend, tf_backend):
    spec = make_spec(*BLOCKS["maxout2"])
    weights = init_weights(spec, seed=0)
    x, y = batch(n=16)
    pt = torch_backend.Trainer(spec, weights, 0.01, 0.0, optimizer="adam")
    tf = tf_backend.Trainer(spec, weights, 0.01, 0.0, optimizer="adam")
    losses_pt = [pt.train_step(*pt.to_device(x, y)) for _ in range(5)]
    losses_tf = [tf.train_step(*tf.to_device(x, y)) for _ in range(5)]
    assert losses_pt[-1] < losses_pt[0]
    np.testing.assert_allclose(losses_pt, losses_tf, rtol=1e-4)


def test_a_learned_size_follows_one_trajectory_in_both_frameworks(torch_backend, tf_backend):
    """The two phases (convbench.learned): before start_learning the radius stays at its start and no penalty is
    in the loss; after it, the radius has an Adam of its own (its own learning rate) and the penalty pulls it in.
    Both frameworks follow one trajectory from one seed over 15 Adam steps: the radius within 1e-4 relative, the loss
    within 2e-3 (float32 sums in different orders, compounded by Adam)."""
    spec = make_spec({"width": 6, "kernel": 7, "init_radius": 2.0, "radius_penalty": 0.5}, {"width": 8, "kernel": 3})
    weights = init_weights(spec, seed=0)
    x, y = batch(n=16)
    backends = (torch_backend, tf_backend)
    trainers = [b.Trainer(spec, weights, 0.01, 0.0, optimizer="adam", learned_lr={"log_radius": 0.05})
                for b in backends]

    def radius(i):
        return float(np.exp(backends[i].export_weights(trainers[i].model)["blocks.0.convs.0.log_radius"][0]))

    def steps(n):
        return np.array([[t.train_step(*t.to_device(x, y)) for t in trainers] for _ in range(n)])

    first = steps(3)
    assert radius(0) == radius(1) == pytest.approx(2.0, abs=1e-6)  # held in the first phase
    for t in trainers:
        t.start_learning(train_size=16)
    second = steps(12)
    assert radius(0) < 2.0 - 0.2  # twelve steps of 0.05 on its logarithm, the penalty pulling
    assert radius(0) == pytest.approx(radius(1), rel=1e-4)
    for losses in (first, second):
        np.testing.assert_allclose(losses[:, 0], losses[:, 1], rtol=2e-3)

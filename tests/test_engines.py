"""Every engine computes what eager mode computes; the layer-wise phases compute what autograd does."""
import numpy as np
import pytest
from conftest import batch, make_spec

from convbench import data
from convbench.cells import ENGINES
from convbench.spec import Block, init_weights
from convbench.timing import Measurement, derive_phases

SPEC = make_spec({"width": 8, "kernel": 3, "depth": 2, "activation": "maxout", "pieces": 2}, {"width": 6, "kernel": 5})


def rel_err(a, b):
    return np.abs(a - b).max() / max(np.abs(a).max(), 1e-12)


@pytest.fixture(scope="module")
def eager_reference(torch_backend):
    trainer = torch_backend.Trainer(SPEC, init_weights(SPEC, 0), 0.05, 0.9)
    x, y = batch(n=8, size=16)
    return trainer.gradients(*trainer.to_device(x, y)), (x, y)


CPU_ENGINES = [(f, e) for f, engines in ENGINES.items() for e in engines if e != "cudagraph"]  # tests/test_cudagraph.py


@pytest.mark.parametrize("framework, engine", CPU_ENGINES)
def test_engine_gives_eager_loss_and_gradients(framework, engine, eager_reference, torch_backend, tf_backend):
    backend = {"torch": torch_backend, "tensorflow": tf_backend}[framework]
    assert engine in backend.ENGINES
    reference, (x, y) = eager_reference
    trainer = backend.Trainer(SPEC, init_weights(SPEC, 0), 0.05, 0.9, engine=engine)
    grads = trainer.gradients(*trainer.to_device(x, y))
    assert grads.keys() == reference.keys()
    for key in reference:
        assert rel_err(reference[key], grads[key]) < 1e-4, key
    # and the timed programs train: three steps lower the loss as eager's do
    inputs = trainer.to_device(x, y)
    losses = [trainer.train_step(*inputs) for _ in range(3)]
    eager = torch_backend.Trainer(SPEC, init_weights(SPEC, 0), 0.05, 0.9)
    np.testing.assert_allclose(losses, [eager.train_step(*eager.to_device(x, y)) for _ in range(3)], rtol=1e-4)


def test_unknown_engine_is_refused(torch_backend, tf_backend):
    with pytest.raises(ValueError, match="unknown PyTorch engine 'jit'"):
        torch_backend.Trainer(SPEC, init_weights(SPEC, 0), 0.05, 0.9, engine="jit")
    with pytest.raises(ValueError, match="unknown TensorFlow engine 'graph'"):
        tf_backend.Trainer(SPEC, init_weights(SPEC, 0), 0.05, 0.9, engine="graph")


def test_torchscript_records_its_deprecation_warning(torch_backend):
    trainer = torch_backend.Trainer(SPEC, init_weights(SPEC, 0), 0.05, 0.9, engine="torchscript")
    assert any("deprecated" in w for w in trainer.warnings)


def test_derived_phases_are_differences_of_the_cumulative_programs():
    programs = {"forward": Measurement([1.0, 2.0]), "forward_backward": Measurement([3.0, 5.0]),
                "step": Measurement([3.5, 6.0])}
    phases = derive_phases(programs)
    assert phases["backward"].samples == [2.0, 3.0]
    assert phases["optimizer"].samples == [0.5, 1.0]
    assert phases["total"].samples == [3.5, 6.0]


@pytest.mark.parametrize("activation, pieces", [("relu", 1), ("maxout", 2)])
def test_layer_phases_agree_across_frameworks_and_with_autograd(activation, pieces, torch_backend, tf_backend):
    import torch

    block = Block(width=8, kernel=3, activation=activation, pieces=pieces, pool=1)
    tensors = data.layer_tensors(3, 8, 3, pieces, batch_size=2, image_size=6, seed=0)
    pt, _ = torch_backend.layer_phases(block, tensors)
    tf, _ = tf_backend.layer_phases(block, tensors)
    nchw = lambda t: t.numpy().transpose(0, 3, 1, 2)  # noqa: E731
    np.testing.assert_allclose(pt["forward"]().numpy(), nchw(tf["forward"]()), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(pt["backward_input"]().numpy(), nchw(tf["backward_input"]()), rtol=1e-4, atol=1e-4)
    (w_pt, b_pt), (w_tf, b_tf) = pt["backward_weight"](), tf["backward_weight"]()
    np.testing.assert_allclose(w_pt.numpy(), w_tf.numpy().transpose(3, 2, 0, 1), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(b_pt.numpy(), b_tf.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(pt["activation_backward"]().numpy(), nchw(tf["activation_backward"]()), rtol=1e-5)
    # the backward halves are the gradients autograd computes for the convolution
    x = torch.from_numpy(tensors["x"]).requires_grad_(True)
    w = torch.from_numpy(tensors["weight"]).requires_grad_(True)
    out = torch.nn.functional.conv2d(x, w, torch.from_numpy(tensors["bias"]), padding=1)
    gx, gw = torch.autograd.grad(out, [x, w], torch.from_numpy(tensors["grad_out"]))
    np.testing.assert_allclose(pt["backward_input"]().numpy(), gx.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(w_pt.numpy(), gw.numpy(), rtol=1e-5, atol=1e-5)


def test_gpu_cells_fail_cleanly_without_a_gpu(tmp_path):
    """The GPU path imports and runs on a machine without CUDA: its cells become failed records that say why."""
    import json

    import torch
    import yaml

    from convbench import config
    from convbench.run import run_cells

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the GPU path runs for real here")
    with open("config/paper-gpu.yaml") as f:
        gpu = yaml.safe_load(f)
    cell = next(c for c in config.check(gpu) if c.group == "speed/torch")
    assert cell.device == "cuda" and cell.settings["cuda"] == {"cudnn_benchmark": True, "tf32": False}
    [record] = run_cells([cell], tmp_path, log=lambda _: None)
    assert record["status"] == "failed" and "torch.cuda.is_available() is False" in record["error"]
    assert json.loads((tmp_path / f"{cell.id}.json").read_text())["status"] == "failed"

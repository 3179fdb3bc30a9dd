"""The cudagraph engine: a whole training step (forward, backward, optimizer step) captured with torch.cuda.graphs.
It needs a GPU: a CPU config that asks for it is refused up front, naming the field; the capture itself is tested
only where CUDA is available."""
import numpy as np
import pytest
from conftest import make_spec

from convbench import config, run
from convbench.cells import Cell
from convbench.spec import init_weights


def test_a_cpu_config_with_the_cudagraph_engine_is_refused_naming_the_field():
    settings = config.read("config/config.yaml")
    settings["studies"]["engines"]["engines"]["torch"].append("cudagraph")
    with pytest.raises(config.ConfigError, match=r"studies\.engines\.engines\.torch: cudagraph .* device: cuda"):
        config.check(settings)
    settings = config.read("config/config.yaml")
    settings["engines"]["torch"] = ["cudagraph"]
    with pytest.raises(config.ConfigError, match=r"config: engines\.torch: cudagraph"):
        config.check(settings)


def test_the_gpu_config_lists_it_and_passes_the_check():
    settings = config.read("config/paper-gpu.yaml")
    assert "cudagraph" in settings["studies"]["overhead"]["engines"]["torch"]
    cells = config.check(settings)
    assert any(c.engine == "cudagraph" for c in cells) and not any(c.engine == "cudagraph" and c.task != "speed"
                                                                   for c in cells)


def test_the_torch_trainer_refuses_cudagraph_on_the_cpu(torch_backend):
    spec = make_spec({"width": 8, "kernel": 3})
    with pytest.raises(ValueError, match="cudagraph.*cuda"):
        torch_backend.Trainer(spec, init_weights(spec, 0), 0.01, 0.9, "cpu", "cudagraph")


def cuda_available():
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.skipif(not cuda_available(), reason="CUDA graphs need an NVIDIA GPU")
def test_a_captured_step_trains_as_the_eager_step_does(torch_backend):
    """Replaying the captured step changes the weights exactly as eager steps from the same start do, and a speed
    cell of the engine gives derived phases and a whole step."""
    import torch

    torch_backend.configure(2, cudnn_benchmark=False, tf32=False)
    torch.backends.cudnn.deterministic = True
    spec = make_spec({"width": 8, "kernel": 3}, {"width": 16, "kernel": 3})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 3, 16, 16)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    weights = {}
    for engine in ("eager", "cudagraph"):
        trainer = torch_backend.Trainer(spec, init_weights(spec, 0), 0.01, 0.9, "cuda", engine)
        inputs = trainer.to_device(x, y)
        for _ in range(8 if engine == "eager" else 5):  # the capture itself runs 3 eager warm-up steps first
            trainer.step(*inputs)
        trainer.sync()
        weights[engine] = torch_backend.export_weights(trainer.model)
    for name, w in weights["eager"].items():
        np.testing.assert_allclose(weights["cudagraph"][name], w, rtol=1e-4, atol=1e-5, err_msg=name)
    cell = Cell("overhead", "speed", "torch", "cudagraph", spec, 16, 16, 0, 2, device="cuda",
                settings={"warmup": 2, "min_repeats": 5, "max_repeats": 10, "max_seconds": 1.0, "max_iqr_ratio": 0.5,
                          "lr": 0.01, "momentum": 0.9})
    result = run.measure_speed(cell, torch_backend)
    assert result["timings"]["phase_method"] == "derived"
    assert set(result["timings"]["phases"]) >= {"forward", "backward", "optimizer"}
    assert result["timings"]["step"]["median"] > 0

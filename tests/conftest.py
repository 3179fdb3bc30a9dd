import numpy as np
import pytest

from convbench.spec import ArchSpec


@pytest.fixture(scope="session")
def torch_backend():
    from convbench.backends import torch_backend

    torch_backend.configure(2)
    return torch_backend


@pytest.fixture(scope="session")
def tf_backend():
    from convbench.backends import tf_backend

    tf_backend.configure(2)
    return tf_backend


def make_spec(*blocks, in_channels=3, num_classes=10, name="test") -> ArchSpec:
    return ArchSpec.from_dict(name, {"blocks": list(blocks)}, in_channels, num_classes)


def batch(n=4, channels=3, size=12, classes=10, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, channels, size, size)).astype(np.float32), rng.integers(0, classes, n)

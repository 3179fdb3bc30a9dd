"""The learned study: the kernel study's grid search against the kernel size and filters learned in training.

Fixture records follow the measuring side's format (convbench.run.train and shrink_and_measure): kernel-study train
cells with the final epoch's accuracies and wall_s, speed cells with forward/backward summaries, learned-study train
cells whose epochs carry "learned" ({"blocks.i.radius": float} or {"blocks.i.open_maps": int}) and whose "learned"
section holds the shrunk spec, what was kept, its counts, accuracy, logit difference and step timings. They go
through write_tidy and read_run, as in the pipeline; the asserts are on values and verdicts, not on wording.
"""
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import new_record

from convbench import spec
from convbench.analysis import analyse_study, build_pdf, read_run, write_tidy
from convbench.analysis.formatting import verdict_word
from convbench.analysis.latex import read_macros
from convbench.analysis.learned import STUDY, data
from convbench.analysis.learned.values import cost_word, frames
from convbench.analysis.learned.values import verdicts as study_verdicts
from convbench.analysis.stats import Kind, Outcome, pareto_front, t_interval

ROOT = Path(__file__).resolve().parents[1]
T_2 = 4.302652729911275  # t quantile 0.975 at 2 degrees of freedom, from a printed table
FRAMEWORKS = ("torch", "tensorflow")
# (filters, kernel, depth) per block. Names say nothing the analysis reads: "k5-b" is k5 narrowed to about k3's
# parameters, which the analysis must find from the widths.
SWEEP = {"k3": [(32, 3, 1), (64, 3, 1)], "k5": [(32, 5, 1), (64, 5, 1)], "k7": [(32, 7, 1), (64, 7, 1)],
         "k3-stack2": [(32, 3, 2), (64, 3, 2)], "k5-b": [(20, 5, 1), (40, 5, 1)]}
# Final test accuracy of seeds 0, 1, 2: k5 best, k3 and k7 within its interval.
ACCURACY = {"k3": [0.95, 0.96, 0.97], "k5": [0.97, 0.975, 0.98], "k7": [0.96, 0.965, 0.97],
            "k3-stack2": [0.955, 0.96, 0.965], "k5-b": [0.94, 0.95, 0.96]}
SWEEP_WALL = 2.0  # s per kernel-study train cell
LEARNED_WALL = 12.0  # s per learned cell


def blocks(layers, **extra):
    return [{"width": w, "kernel": k, "depth": d, "activation": "relu", "pieces": 1, "pool": 2, "init_radius": None,
             "radius_penalty": 0.0, "gates": False, "init_log_alpha": 2.0, "l0_penalty": 0.0, **extra}
            for w, k, d in layers]


def counts(name, arch_blocks, image_size=8, in_channels=1):
    s = spec.ArchSpec.from_dict(name, {"blocks": arch_blocks}, in_channels, 10)
    return spec.param_count(s), spec.forward_flops(s, image_size)


def summary(median, iqr, n=10):
    samples = list(np.linspace(median - iqr, median + iqr, n))
    return {"median": median, "iqr": iqr, "cv": 0.02, "n": n, "noisy": False, "samples": samples}


def record(study, task, framework, arch, arch_blocks, seed=0, settings=None, wall=SWEEP_WALL):
    image_size, in_channels = (16, 3) if task == "speed" else (8, 1)
    params, flops = counts(arch, arch_blocks, image_size, in_channels)
    settings = settings or {"epochs": 4, "lr": 0.05, "momentum": 0.9,
                            "data": {"dataset": "digits", "root": None, "test_fraction": 0.25, "train_fraction": 1.0}}
    cell = {"study": study, "task": task, "framework": framework, "engine": "eager",
            "arch": {"name": arch, "blocks": arch_blocks, "in_channels": in_channels, "num_classes": 10},
            "batch_size": 64, "image_size": image_size, "seed": seed, "threads": 2, "device": "cpu", "devices": 1,
            "parallelism": "none", "train_fraction": 1.0, "settings": settings}
    return new_record(cell, f"{study}_{arch}_{framework}-eager_cpu1-none_b64_s{seed}_{task}",
                      counts={"params": params, "flops_forward": flops, "params_framework": params},
                      process={"import_s": 2.0, "cells": 10},
                      environment={"python": "3.11.7", "cpu_model": "test CPU", "versions": {framework: "1.0"}},
                      started="2026-11-29T00:00:00+00:00", wall_s=wall)


def train_record(framework, arch, seed, accuracy, wall=SWEEP_WALL):
    r = record("kernel", "train", framework, arch, blocks(SWEEP[arch]), seed, wall=wall)
    epochs = [{"epoch": e, "train_loss": 1.0 / e, "train_accuracy": min(1.0, accuracy + 0.02) * e / 4,
               "test_loss": 1.1 / e, "test_accuracy": accuracy * e / 4, "seconds": 0.3} for e in (1, 2, 3, 4)]
    r["training"] = {"epochs": epochs, "dataset": {"name": "digits", "train_size": 1347, "test_size": 450}}
    return r


def speed_record(framework, arch):
    r = record("kernel", "speed", framework, arch, blocks(SWEEP[arch]))
    scale = sum(k * k * w * d for w, k, d in SWEEP[arch]) / 1000
    r["timings"] = {"first_step": 0.2, "phase_method": "direct",
                    "phases": {"forward": summary(0.001 * scale, 0.0001 * scale),
                               "backward": summary(0.002 * scale, 0.0002 * scale),
                               "optimizer": summary(0.001, 0.0001)},
                    "step": summary(0.003 * scale + 0.001, 0.0002 * scale)}
    return r


LEARNED_SETTINGS = {"epochs": 4, "optimizer": "adam", "lr": 0.01, "momentum": 0.9,
                    "timing": {"warmup": 3, "min_repeats": 10, "max_repeats": 30, "max_seconds": 2.0,
                               "max_iqr_ratio": 0.1},
                    "data": {"dataset": "digits", "root": None, "test_fraction": 0.25, "train_fraction": 1.0}}


def learned_record(framework, kind, seed=0, kernels=(5, 5), maps=(32, 40), test=0.974, max_diff=2e-6,
                   wall=LEARNED_WALL, failed=False):
    """A learned-size (kind 'size': 7x7 masks, radius from 2.0) or learned-width (kind 'width': 3x3, gated) cell."""
    if kind == "size":
        arch, start = "learned-size", blocks([(32, 7, 1), (64, 7, 1)], init_radius=2.0, radius_penalty=0.2)
        final_radius = [k // 2 - 0.8 for k in kernels]  # 5x5 -> 1.2: inside (1, 2], which crops to 5x5
        history = [{f"blocks.{i}.radius": 2.0 + (z - 2.0) * e / 4 for i, z in enumerate(final_radius)} for e in (1, 2, 3, 4)]
        shrunk = blocks([(32, kernels[0], 1), (64, kernels[1], 1)])
        kept = [{"kernel": k, "maps": m} for k, m in zip(kernels, (32, 64))]
    else:
        arch, start = "learned-width", blocks([(32, 3, 1), (64, 3, 1)], gates=True, init_log_alpha=0.5, l0_penalty=0.05)
        history = [{f"blocks.{i}.open_maps": int(round(w - (w - m) * e / 4)) for i, (w, m) in enumerate(zip((32, 64), maps))}
                   for e in (1, 2, 3, 4)]
        shrunk = blocks([(maps[0], 3, 1), (maps[1], 3, 1)])
        kept = [{"kernel": 3, "maps": m} for m in maps]
    r = record("learned", "train", framework, arch, start, seed, dict(LEARNED_SETTINGS), wall=wall)
    if failed:
        r.update(status="failed", error="Traceback (most recent call last):\n  ...\nSpecError: every gate closed")
        return r
    r["training"] = {"epochs": [{"epoch": e, "train_loss": 0.5 / e, "train_accuracy": min(1.0, test + 0.01),
                                 "test_loss": 0.6 / e, "test_accuracy": test, "seconds": 1.0, "learned": h}
                                for e, h in zip((1, 2, 3, 4), history)],
                     "dataset": {"name": "digits", "train_size": 1347, "test_size": 450}}
    params, flops = counts(f"{arch}-shrunk", shrunk)
    r["learned"] = {"shrunk_arch": {"name": f"{arch}-shrunk", "blocks": shrunk, "in_channels": 1, "num_classes": 10},
                    "kept": kept, "params": params, "flops_forward": flops, "test_accuracy": test,
                    "max_logit_difference": max_diff,
                    "step": {"learned": summary(0.040, 0.002), "shrunk": summary(0.028, 0.001)}}
    return r


def study(accuracy=ACCURACY, seeds=(0, 1, 2), learned=True, size=None, width=None, failed=()):
    """Records of both studies in both frameworks; size/width: keyword overrides of the learned cells."""
    records = []
    for framework in FRAMEWORKS:
        for arch in SWEEP:
            records += [train_record(framework, arch, s, accuracy[arch][s]) for s in seeds]
            records.append(speed_record(framework, arch))
        if learned:
            records.append(learned_record(framework, "size", **(size or {})))
            records.append(learned_record(framework, "width", **(width or {}), failed="width" in failed))
    return records


def written(records, root):
    """Write the records as a run would, publish the tidy table and read it back as every study does."""
    for r in records:
        path = root / "records" / r["cell"]["task"] / r["cell"]["framework"] / f"{r['cell_id']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r))
    return read_run(write_tidy(root / "records", root / "generated"), reference=None)


def analysed(tmp_path, name="run", **kwargs):
    """(values, verdicts by key, out dir) of the study on the fixture records."""
    run = written(study(**kwargs), tmp_path / name)
    out = analyse_study(STUDY, run, tmp_path / name / "learned")
    return read_macros(out / "macros.tex"), {v.key: v for v in study_verdicts(run)}, out


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    return analysed(tmp_path_factory.mktemp("full"))


@pytest.fixture
def values(full):
    return full[0]


def tt(name):
    return rf"\texttt{{{name}}}"


def line(table: str, start: str) -> str:
    return next(x for x in table.splitlines() if x.startswith(start))


# ---- the tidy table ------------------------------------------------------------------------------

def test_tidy_holds_the_learned_state_and_the_recipe(tmp_path):
    run = written(study(), tmp_path)
    df = run.tidy
    radius = df[(df["metric"] == "radius") & (df["setup"] == "torch-eager") & (df["block"] == 0)].sort_values("epoch")
    assert list(radius["epoch"]) == [0, 1, 2, 3, 4] and radius["value"].iloc[0] == 2.0  # epoch 0: the spec's
    kept = df[(df["metric"] == "kept_maps") & (df["arch"] == "learned-width")].groupby("block")["value"].first()
    assert list(kept) == [32, 40]
    step = df[(df["metric"] == "step_time") & (df["setup"] == "torch-eager") & (df["arch"] == "learned-size")]
    assert dict(zip(step["phase"], step["value"])) == {"learned": 0.040, "shrunk": 0.028}
    learned = df[df["study"] == "learned"].iloc[0]
    assert (learned["optimizer"], learned["lr"], learned["planned_epochs"]) == ("adam", 0.01, 4)
    sweep = df[(df["study"] == "kernel") & (df["arch"] == "k3-stack2")].iloc[0]
    assert (sweep["kernels"], sweep["depths"], sweep["widths"]) == ("3, 3", "2, 2", "32, 64")
    assert df[df["study"] == "learned"]["init_radius"].dropna().unique().tolist() == ["2, 2", "-, -"]


def test_trajectories_start_at_the_initialisation(tmp_path):
    traj = frames(written(study(), tmp_path)).traj
    radius = traj[(traj["quantity"] == "radius") & (traj["unit"] == "torch-eager") & (traj["block"] == 0)]
    assert list(radius.sort_values("epoch")["epoch"]) == [0, 1, 2, 3, 4]
    maps = traj[(traj["quantity"] == "open_maps") & (traj["block"] == 1) & (traj["unit"] == "torch-eager")]
    assert maps.sort_values("epoch")["value"].tolist() == [64, 58, 52, 46, 40]


# ---- the grid search ----------------------------------------------------------------------------

def test_mean_and_interval_by_hand(values):
    for arch, acc in ACCURACY.items():
        mean = sum(acc) / 3
        sd = math.sqrt(sum((a - mean) ** 2 for a in acc) / 2)
        assert values[f"learned/sweep/torch-eager/{arch}/test-accuracy"] == f"{100 * mean:.1f}"
        assert values[f"learned/sweep/tensorflow-eager/{arch}/test-accuracy-ci"] == f"{100 * T_2 * sd / math.sqrt(3):.1f}"
        assert values[f"learned/sweep/torch-eager/{arch}/seeds"] == "3"
    assert values["learned/sweep/torch-eager/k5/test-accuracy-ci"] == "1.2"  # 4.303 * 0.005 / sqrt(3) = 0.0124
    assert values["learned/sweep/torch-eager/k3/params"] == f"{counts('k3', blocks(SWEEP['k3']))[0]:,}"
    assert values["learned/sweep/seeds"] == "three seeds" and values["learned/sweep/intervals"] == "1"
    assert values["learned/sweep/best"] == tt("k5") and values["learned/sweep/best-accuracy"] == r"97.5\,$\pm$\,1.2"
    assert all(tt(a) in values["learned/sweep/tied"] for a in ("k3", "k7", "k3-stack2", "k5-b"))


def test_t_interval_and_pareto_front():
    mean, ci, n = t_interval([0.97, 0.975, 0.98])
    assert (mean, n) == (pytest.approx(0.975), 3) and ci == pytest.approx(T_2 * 0.005 / math.sqrt(3))
    params = [100, 200, 200, 300, 400, 50, 500, np.nan]
    accuracy = [0.90, 0.95, 0.93, 0.95, 0.97, 0.80, 0.97, 0.99]
    assert list(pareto_front(params, accuracy)) == [True, True, False, False, True, True, False, False]


def test_front_marked_in_the_table_and_values(full):
    values, _, out = full
    # k3 (fewest parameters) and k5 (the most accurate) are on the front; k5-b has more parameters than k3 and a
    # lower accuracy, k7 and k3-stack2 more parameters than k5 and lower accuracies.
    assert values["learned/sweep/front"] == rf"{tt('k3')} and {tt('k5')}"
    table = (out / "tables" / "learned_sweep.tex").read_text()
    assert r"97.5\,$\pm$\,1.2$^\star$" in line(table, tt("k5") + " ")
    assert "$^\\star$" not in line(table, tt("k7") + " ")


def test_matching_read_from_the_widths(full, tmp_path):
    values, _, out = full
    scells = frames(written(study(), tmp_path)).scells
    assert data.matching(scells) == {"k3": "reference", "k5": "equal width", "k7": "equal width",
                                     "k3-stack2": "equal width", "k5-b": "equal params"}
    assert values["learned/sweep/reference"] == tt("k3")
    table = (out / "tables" / "learned_sweep.tex").read_text()
    assert "equal params" in line(table, tt("k5-b")) and "equal width" in line(table, tt("k3-stack2"))


def test_failed_sweep_cell_is_counted_as_failed(tmp_path):
    records = study()
    bad = next(r for r in records if r["cell_id"] == "kernel_k7_torch-eager_cpu1-none_b64_s1_train")
    bad.update(status="failed", error="Traceback\nRuntimeError: out of memory")
    del bad["training"]
    out = analyse_study(STUDY, written(records, tmp_path), tmp_path / "learned")
    values = read_macros(out / "macros.tex")
    assert values["learned/sweep/failed"] == "1" and values["learned/sweep/torch-eager/k7/seeds"] == "2"
    assert "2 (+1 failed)" in (out / "tables" / "learned_sweep.tex").read_text()


# ---- what was learned ---------------------------------------------------------------------------

def test_learned_radius_kernels_and_maps(full):
    values, _, out = full
    assert values["learned/size/final-radius"] == "1.20" and values["learned/size/init-radius"] == "2"
    assert values["learned/size/kept"] == r"5$\times$5" and values["learned/size/max-kernel"] == "7"
    assert values["learned/torch-eager/learned-size/kernels"] == "5, 5"
    assert values["learned/width/kept"] == "32 of 32 and 40 of 64"
    assert values["learned/tensorflow-eager/learned-width/maps"] == "32, 40"
    shrunk = (out / "tables" / "learned_shrunk.tex").read_text()
    assert "5/7, 5/7" in shrunk and "32/32, 40/64" in shrunk
    assert "Every setup's verdicts" in (out / "tables" / "learned_verdicts.tex").read_text()  # two frameworks
    assert {f.name for f in STUDY.figures} == {"learned_pareto", "learned_radius", "learned_penalty",
                                               "learned_tracking"}
    for f in STUDY.figures:
        assert (out / "figures" / f"{f.name}.pdf").stat().st_size > 1000


def test_shrunk_against_masked_and_exactness(full):
    values, verdicts, _ = full
    assert values["learned/size/params"] == f"{counts('s', blocks([(32, 5, 1), (64, 5, 1)]))[0]:,}"
    step = verdicts["learned/size/step"]
    # a range from the quartiles decides no direction: the step ratio is a fact, never "faster"
    assert step.estimate == pytest.approx(0.7) and step.outcome is Outcome.NONE and step.lo < 0.7 < step.hi
    assert step.kind is Kind.QUARTILES and "faster" not in values["learned/size/step-word"]
    assert verdicts["learned/tensorflow-eager/learned-width/step"].outcome is Outcome.NONE
    assert values["learned/torch-eager/learned-size/step-ratio"] == "0.70"
    assert values["learned/size/has-twin"] == "1" and values["learned/size/twin"] == tt("k5")
    # a long name may break after its hyphens (cmtt never hyphenates: the line before it stretched)
    assert values["learned/size/arch"] == r"\texttt{learned-\allowbreak{}size}"
    assert values["learned/max-logit-difference"] == "$2.0\\times10^{-6}$" and values["learned/exact"] == "1"


def test_exactness_flips(tmp_path):
    values, _, _ = analysed(tmp_path, width={"max_diff": 0.03})
    assert values["learned/exact"] == "0" and values["learned/max-logit-difference"] == "$3.0\\times10^{-2}$"


# ---- verdicts -----------------------------------------------------------------------------------

def test_size_verdict_flips_with_the_data(tmp_path):
    best = analysed(tmp_path, "a")[1]["learned/size/kernel"]
    assert (best.fact, best.reference, best.estimate) == ("the size the grid ranks best", "k5", 0)
    # k3 minus k5 per seed: 0.5, -1.5, 0.5 points; paired, since the grid's networks share seeds
    tied = analysed(tmp_path, "b", accuracy=dict(ACCURACY, k3=[0.975, 0.96, 0.985]),
                    size={"kernels": (3, 3)})[1]["learned/size/kernel"]
    assert tied.outcome is Outcome.UNDECIDED and tied.kind is Kind.SEEDS
    assert tied.estimate == pytest.approx(-0.005 / 3) and tied.lo < 0 < tied.hi and tied.n == 3
    # k3 96.0 +- 2.5 against k5 97.5 +- 1.2: the paired interval of (-2, -1.5, -1) excludes zero but reaches inside
    # the one-point margin: undecided
    paired = analysed(tmp_path, "b2", size={"kernels": (3, 3)})[1]["learned/size/kernel"]
    assert paired.outcome is Outcome.UNDECIDED and -0.01 < paired.hi < 0
    apart = dict(ACCURACY, k3=[0.90, 0.905, 0.91])
    worse = analysed(tmp_path, "c", accuracy=apart, size={"kernels": (3, 3)})[1]["learned/size/kernel"]
    assert worse.outcome is Outcome.LOWER and worse.hi < -0.01
    mixed = analysed(tmp_path, "d", size={"kernels": (5, 3)})[1]["learned/size/kernel"]
    assert mixed.fact == "a different size per block" and math.isnan(mixed.estimate)


def test_accuracy_verdict_flips_with_the_data(tmp_path, full):
    """One learned run against the t prediction interval of a new seed of the best hand-picked network."""
    values, verdicts, _ = full
    within = verdicts["learned/size/vs-best"]
    half = T_2 * 0.005 * math.sqrt(1 + 1 / 3)  # k5: 97.0, 97.5, 98.0
    assert (within.outcome, within.kind, within.reference) == (Outcome.UNDECIDED, Kind.PREDICTION, "k5")
    assert within.estimate == pytest.approx(-0.001) and within.unit == "points"
    assert (within.lo, within.hi) == (pytest.approx(-0.001 - half), pytest.approx(-0.001 + half))
    assert values["learned/size/vs-best"] == "$-$0.1" and values["learned/size/vs-best-word"] == verdict_word(within)
    assert values["learned/size/dominators"] == tt("k5")  # k5: as many parameters, 97.5 %
    below = analysed(tmp_path, "b", size={"test": 0.90})[1]["learned/size/vs-best"]
    assert below.outcome is Outcome.LOWER and below.hi < 0
    tight = dict(ACCURACY, k5=[0.97, 0.971, 0.972])
    above_values, above, _ = analysed(tmp_path, "c", accuracy=tight, size={"test": 0.995})
    assert above["learned/size/vs-best"].outcome is Outcome.HIGHER
    assert above["learned/size/vs-best"].lo > 0
    assert above_values["learned/size/dominated"] == "0" and above_values["learned/size/dominators"] == "none"
    width = verdicts["learned/torch-eager/learned-width/vs-best"]
    assert width.outcome is Outcome.UNDECIDED
    number = lambda key: float(values[key].replace(",", ""))  # noqa: E731
    assert number("learned/width/params") < number("learned/sweep/best-params")


def test_compute_cost_ratio(full):
    values, verdicts, _ = full
    cells = len(SWEEP) * 3  # architectures x seeds, per framework
    whole, one = cells * SWEEP_WALL / LEARNED_WALL, len(SWEEP) * SWEEP_WALL / LEARNED_WALL
    assert values["learned/torch-eager/learned-size/cost-ratio"] == f"{whole:.2f}" == "2.50"
    cost = verdicts["learned/cost"]
    assert (cost.estimate, cost.lo) == (pytest.approx(whole), pytest.approx(one))
    assert cost.fact == "less than the whole grid but more than one seed of it"
    assert values["learned/grid-time"] == "30.0\\,s"


def test_cost_verdict_flips_with_the_numbers(tmp_path):
    cheap = analysed(tmp_path, "a", size={"wall": 4.0}, width={"wall": 4.0})[1]["learned/cost"]
    assert cheap.fact == "less than even one seed of the grid"
    dear = analysed(tmp_path, "b", size={"wall": 60.0})[1]["learned/cost"]  # the dearest run decides
    assert dear.fact == "more than the whole grid" and dear.estimate == pytest.approx(0.5)


def test_a_cost_ratio_within_the_time_margin_is_about_as_much():
    """A wall-clock ratio of one process has no interval: within the time margin of 1 it says neither more nor less
    (two runs of one commit read 0.99 and 1.01 and said opposite things)."""
    assert cost_word(3.0, 0.99) == cost_word(3.0, 1.01) == "about as much as one seed of the grid"
    assert cost_word(3.0, 1.06) == "less than even one seed of the grid"
    assert cost_word(1.02, 0.5) == "about as much as the whole grid"
    assert cost_word(0.9, 0.3) == "more than the whole grid"
    assert cost_word(3.0, 0.5) == "less than the whole grid but more than one seed of it"


def test_one_seed_has_no_interval_and_says_so(tmp_path):
    values, verdicts, _ = analysed(tmp_path, seeds=(0,))
    assert not any(k.endswith("test-accuracy-ci") for k in values)
    assert values["learned/sweep/intervals"] == "0" and values["learned/one-seed"] == "1"
    v = verdicts["learned/size/vs-best"]
    assert v.outcome is Outcome.UNDECIDED and v.kind is Kind.NONE and math.isnan(v.lo)


def test_several_learned_seeds(tmp_path):
    records = study()
    for framework in FRAMEWORKS:
        records += [learned_record(framework, "size", seed=s, kernels=k, test=t)
                    for s, k, t in [(1, (5, 5), 0.97), (2, (3, 3), 0.96)]]
    out = analyse_study(STUDY, written(records, tmp_path), tmp_path / "learned")
    values = read_macros(out / "macros.tex")
    mean, ci, _ = t_interval([0.974, 0.97, 0.96])
    assert values["learned/torch-eager/learned-size/test-accuracy"] == f"{100 * mean:.1f}"
    assert values["learned/size/test-accuracy"] == f"{100 * mean:.1f}\\,$\\pm$\\,{100 * ci:.1f}"
    assert values["learned/size/agree"] == "0" and values["learned/size/kept"] == r"5$\times$5"  # 2 of 3 seeds
    assert values["learned/seeds"] == "1--3 seeds" and values["learned/one-seed"] == "0"
    assert "5/7, 5/7 (2 of 3)" in (out / "tables" / "learned_shrunk.tex").read_text()
    # three learned seeds share seeds 0-2 with the grid: paired differences, a t interval of their mean
    run = written(records, tmp_path / "again")
    v = {x.key: x for x in study_verdicts(run)}["learned/size/vs-best"]
    diffs = np.array([0.974, 0.97, 0.96]) - np.array(ACCURACY["k5"])
    assert v.estimate == pytest.approx(diffs.mean()) and v.n == 3
    assert v.hi - v.lo == pytest.approx(2 * T_2 * diffs.std(ddof=1) / math.sqrt(3))


def test_a_repeat_cell_is_no_seed_of_the_grid(tmp_path):
    records = study()
    for r in records:
        if r["cell"]["study"] == "kernel" and r["cell"]["task"] == "train":
            torch = r["cell"]["framework"] == "torch"
            r["cell"]["settings"]["role"] = "replicate" if torch else "repeat"
    records = [r for r in records if r["cell"]["settings"].get("role") != "repeat" or r["cell"]["seed"] == 0]
    f = frames(written(records, tmp_path))
    assert set(f.sweep["unit"]) == {"torch-eager"} and f.sweep["seeds"].max() == 3


# ---- missing and failed cells -------------------------------------------------------------------

def test_no_learned_records(tmp_path):
    values, verdicts, out = analysed(tmp_path, learned=False)
    assert values["learned/ran"] == "0" and values["learned/size/ran"] == "0" and not verdicts
    assert values["learned/sweep/best-accuracy"] == r"97.5\,$\pm$\,1.2"  # the grid search still reports
    assert "no training cells of the learned study" in (out / "tables" / "learned_shrunk.tex").read_text()
    for f in STUDY.figures:
        assert (out / "figures" / f"{f.name}.pdf").exists()


def test_neither_study_trained(tmp_path):
    records = [speed_record("torch", arch) for arch in SWEEP]
    out = analyse_study(STUDY, written(records, tmp_path), tmp_path / "learned")
    values = read_macros(out / "macros.tex")
    assert values["learned/ran"] == "0" and values["learned/sweep/grid"] == "0" and values["learned/has-cost"] == "0"
    assert all(v for v in values.values())


def test_failed_learned_cell_appears_as_failed(tmp_path):
    values, verdicts, out = analysed(tmp_path, failed=("width",))
    assert values["learned/failed"] == "2" and values["learned/width/ran"] == "0"
    assert "learned/tensorflow-eager/learned-width/vs-best" not in verdicts
    row = line((out / "tables" / "learned_shrunk.tex").read_text(), tt("learned-width"))
    assert row.count(r"\emph{failed}") >= 6 and "0 (+1 failed)" in row
    assert verdicts["learned/size/vs-best"].outcome is Outcome.UNDECIDED  # the others still report


def test_analysis_imports_no_framework():
    code = ("import sys, convbench.analysis.learned; "
            "sys.exit(bool({'torch', 'tensorflow'} & set(sys.modules)))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# ---- the paper section builds -------------------------------------------------------------------

SECTIONS = ("learned", "appendix-learned")


def paper_dir(tmp_path: Path) -> Path:
    """A paper dir whose main.tex has paper/main.tex's preamble (its \\cb, \\ifcb) and inputs only this study."""
    main = (ROOT / "paper" / "main.tex").read_text()
    preamble = main[:main.index(r"\input{macros.tex}") + len(r"\input{macros.tex}")]
    paper = tmp_path / "paper"
    (paper / "sections").mkdir(parents=True)
    (paper / "main.tex").write_text(preamble + "\n\\begin{document}\n\\input{sections/learned}\n\\appendix\n"
                                    "\\input{sections/appendix-learned}\n"
                                    "\\bibliographystyle{plain}\n\\bibliography{refs}\n\\end{document}\n")
    for name in SECTIONS:
        shutil.copy(ROOT / "paper" / "sections" / f"{name}.tex", paper / "sections")
    shutil.copy(ROOT / "paper" / "refs.bib", paper)
    return paper


def test_section_quotes_only_keys_the_study_writes(values):
    text = "".join((ROOT / "paper" / "sections" / f"{name}.tex").read_text() for name in SECTIONS)
    keys = set(re.findall(r"\\(?:cb|ifcb)\{([^}]+)\}", text))
    assert keys and keys <= set(values)


needs_latex = pytest.mark.skipif(shutil.which("latexmk") is None or shutil.which("pdftotext") is None,
                                 reason="latexmk and pdftotext (TeX Live, poppler-utils) are needed to build the paper")


@needs_latex
@pytest.mark.parametrize("learned", [True, False])
def test_section_builds_and_shows_the_numbers(tmp_path, learned):
    _, _, out = analysed(tmp_path, learned=learned)
    pdf = build_pdf(out.parent, tmp_path / "paper.pdf", paper_dir=paper_dir(tmp_path))
    text = " ".join(subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True,
                                   check=True).stdout.split())
    assert "Learning the kernel size and the number of filters" in text
    assert "97.5" in text  # k5's mean accuracy over the fixture's seeds, in the appendix's table
    if learned:
        assert "Louizos" in text  # the reference resolved
        assert f"{counts('s', blocks([(32, 5, 1), (64, 5, 1)]))[0]:,}" in text  # the shrunk learned-size net
    else:
        assert "no finished cell of the learned study" in text


def test_penalty_sweep_against_the_planted_scale(tmp_path):
    """Three radius penalties on the planted task (scale 11): the shrunk fields 3k + 1 are 22, 16 and 4 pixels, two
    of them cover the scale, and of the two converged runs one does. The sweep is read per penalty, in order."""
    records = study(learned=False)
    for penalty, kernels, test, converged in [(0.01, (1, 1), 0.52, True), (0.001, (7, 7), 0.95, False),
                                              (0.003, (5, 5), 0.93, True)]:
        r = learned_record("torch", "size", kernels=kernels, test=test)
        name = f"learned-size-p{penalty:g}"
        r["cell_id"] = r["cell_id"].replace("learned-size", name)
        r["cell"]["arch"]["name"] = name
        for b in r["cell"]["arch"]["blocks"]:
            b["radius_penalty"] = penalty
        r["cell"]["settings"] = {**r["cell"]["settings"], "data": {"dataset": "planted", "scale": 11}}
        r["training"]["dataset"]["name"] = "planted"
        r["training"]["converged"] = converged
        records.append(r)
    out = analyse_study(STUDY, written(records, tmp_path), tmp_path / "learned")
    values = read_macros(out / "macros.tex")
    assert values["learned/planted"] == "1" and values["learned/planted-scale"] == "11"
    assert values["learned/size/sweep/penalties"] == "0.001, 0.003 and 0.01"
    assert values["learned/size/sweep/kept"] == "22, 16 and 4"
    assert values["learned/size/sweep/accuracy"] == "95.0, 93.0 and 52.0"
    assert values["learned/size/sweep/covering"] == "2 of 3"
    assert values["learned/size/sweep/covering-converged"] == "1 of 2"
    assert values["learned/size/sweep/any-converged"] == "1"
    assert values["learned/width/sweep/ran"] == "0"
    assert (out / "figures" / "learned_penalty.pdf").stat().st_size > 1000


def test_hand_picked_networks_of_the_learned_study_join_the_grid(tmp_path):
    """A plain network listed in the learned study (the width grid: k5-w4, k5-w16 beside the kernel study's k5-w8) is
    a grid network with its seeds, not a learned network that failed to shrink."""
    records = study()
    for framework in FRAMEWORKS:
        for seed in (0, 1):
            r = record("learned", "train", framework, "k5-narrow", blocks([(16, 5, 1), (32, 5, 1)]), seed,
                       dict(LEARNED_SETTINGS))
            r["training"] = train_record(framework, "k5", seed, 0.9)["training"]
            records.append(r)
    f = frames(written(records, tmp_path))
    assert "k5-narrow" not in set(f.lstats["arch"]) and f.lstats["failed"].sum() == 0
    narrow = f.sweep[f.sweep["arch"] == "k5-narrow"]
    assert len(narrow) == 2 and set(narrow["seeds"]) == {2} and narrow["mean"].tolist() == pytest.approx([0.9, 0.9])


def test_the_grid_is_what_trained_on_the_learned_networks_task(tmp_path):
    """The full run's kernel study trains on other data (MNIST-5k and the graded planted task) than the learned study
    (planted at one scale): its networks left the grid that the learned ones are set against, and a grid that spans
    two data sets without a learned network is one unit per data set."""
    from convbench.analysis.learned import data
    records = study()
    for r in records:
        if r["cell"]["study"] == "kernel" and r["cell"]["task"] == "train" and r["cell"]["arch"]["name"] == "k7":
            r["training"]["dataset"]["name"] = "mnist5k"  # k7 trained on another data set
    f = frames(written(records, tmp_path / "a"))
    assert "k7" not in set(f.sweep["arch"]) and {"k3", "k5"} <= set(f.sweep["arch"])
    plain = written([r for r in records if r["cell"]["study"] == "kernel"], tmp_path / "b")
    units = data.sweep_cells(plain).drop_duplicates(["unit", "arch"])
    assert set(units.loc[units["arch"] == "k7", "unit"]) == {"torch-eager-mnist5k", "tensorflow-eager-mnist5k"}
    assert set(units.loc[units["arch"] == "k3", "label"]) == {"PyTorch eager, digits", "TensorFlow eager, digits"}


# ---- the tracking study: the learned size at several planted scales -------------------------------------------------

def tracking_record(framework, seed, scale, kernels, test=0.97):
    """A tracking cell: 9x9 masks from radius 3, on the planted task at `scale`, shrunk to `kernels`."""
    r = learned_record(framework, "size", seed=seed, kernels=kernels, test=test)
    arch_blocks = blocks([(8, 9, 1), (16, 9, 1)], init_radius=3.0, radius_penalty=0.5)
    r["cell"].update(study="tracking", arch={**r["cell"]["arch"], "blocks": arch_blocks, "in_channels": 1,
                                             "num_classes": 2},
                     settings={**r["cell"]["settings"], "scale_sweep": True, "lr": 0.005,
                               "learned_lr": {"log_radius": 0.001},
                               "data": {"dataset": "planted", "scale": scale, "train_size": 2000, "test_size": 500}})
    r["cell_id"] = f"tracking_learned-size_{framework}-eager_cpu1-none_b64_s{seed}_p{scale}_train"
    r["training"] |= {"learning_started_epoch": 2, "dataset": {"name": "planted", "train_size": 2000, "test_size": 500}}
    return r


def test_tracking_judges_each_run_against_the_covering_staircase(tmp_path):
    """Scale 7 covers at field 10, scale 11 at 14 (one kernel step: 4 pixels). Seeds 0-2 at 7 learn 10, 14 and the
    largest kernels (22 with 7x7, but 9x9 is the largest: kept 9 is at the boundary); at 11: 14, 18 and 10 at
    chance (lost)."""
    from convbench.analysis.learned import tracking
    records = [tracking_record("torch", 0, 7, (7, 1)), tracking_record("torch", 1, 7, (3, 5)),
               tracking_record("torch", 2, 7, (9, 3)), tracking_record("torch", 0, 11, (3, 5)),
               tracking_record("torch", 1, 11, (7, 5)), tracking_record("torch", 2, 11, (3, 3), test=0.52),
               tracking_record("tensorflow", 0, 7, (7, 1)), tracking_record("tensorflow", 0, 11, (5, 5))]
    run = written(records, tmp_path)
    r = tracking.runs(run)
    r = r[r["framework"] == "torch"].set_index(["scale", "seed"])
    assert r["covering"].to_dict() == {(7, 0): 10, (7, 1): 10, (7, 2): 10, (11, 0): 14, (11, 1): 14, (11, 2): 14}
    assert r["field"].to_dict() == {(7, 0): 10, (7, 1): 14, (7, 2): 16, (11, 0): 14, (11, 1): 18, (11, 2): 10}
    assert r["tracks"].to_dict() == {(7, 0): True, (7, 1): True, (7, 2): False, (11, 0): True, (11, 1): True,
                                     (11, 2): False}
    assert r["at_largest"].sum() == 1 and r.loc[(7, 2), "at_largest"]
    assert r["lost"].sum() == 1 and r.loc[(11, 2), "lost"]
    values = tracking.values(run)
    assert values["learned/tracking/s7/tracked"] == "2 of 3" and values["learned/tracking/s11/fields"] == "14, 18, 10"
    assert values["learned/tracking/tracked"] == "4 of 6" and values["learned/tracking/met"] == "0"
    assert values["learned/tracking/misses"] == "1 ended at the largest kernel and 1 ended below the scale at chance"
    assert values["learned/tracking/repeats-agree"] == "1 of 2"  # TF's seed 0: (7, 1) at scale 7, (5, 5) at 11
    assert values["learned/tracking/repeats-near"] == "2 of 2"  # at 11: field 16 against PyTorch's 14, one step apart
    # the recipe the method states: the weights' rate, the radii's own, the images drawn
    assert (values["learned/tracking/lr"], values["learned/tracking/radius-lr"]) == ("0.005", "0.001")
    assert values["learned/tracking/train-size"] == "2,000"
    assert tracking.figure(run, tmp_path / "tracking.pdf").stat().st_size > 0


def test_tracking_misses_name_no_count_of_zero():
    """'0 ended at the largest kernel and 0 below the scale' read as a seam: only what happened is counted."""
    from convbench.analysis.learned.tracking import misses
    assert misses(0, 0) == "none ended at the largest kernel or below the scale at chance"
    assert misses(2, 0) == "2 ended at the largest kernel"
    assert misses(0, 1) == "1 ended below the scale at chance"


def test_one_setup_is_not_called_every_setup(tmp_path):
    """With the learned networks in one framework, the verdicts are the study's, not 'every setup's'."""
    from convbench.analysis.learned import tables
    records = [r for r in study() if r["cell"]["framework"] == "torch"]
    run = written(records, tmp_path)
    text = tables.verdict_table(run)
    assert "The learned study's verdicts" in text and "Every setup" not in text

"""Issue 4's analysis: the kernel study's grid search against the kernel size and filters learned in training.

Fixture records follow the measuring side's format (convbench.run.train and shrink_and_measure): kernel-study train
cells with the final epoch's accuracies and wall_s, speed cells with forward/backward summaries, learned-study train
cells whose epochs carry "learned" ({"blocks.i.radius": float} or {"blocks.i.open_maps": int}) and whose "learned"
section holds the shrunk spec, what was kept, its counts, accuracy, logit difference and step timings.
"""
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convbench import spec
from convbench.analysis import build_pdf, tables, tidy
from convbench.analysis import learned as analysis
from convbench.analysis.macros import write_macros

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
    return {
        "schema_version": 1, "cell_id": f"{study}_{arch}_{framework}-eager_cpu1-none_b64_s{seed}_{task}",
        "cell": {"study": study, "task": task, "framework": framework, "engine": "eager",
                 "arch": {"name": arch, "blocks": arch_blocks, "in_channels": in_channels, "num_classes": 10},
                 "batch_size": 64, "image_size": image_size, "seed": seed, "threads": 2, "device": "cpu", "devices": 1,
                 "parallelism": "none", "train_fraction": 1.0, "settings": settings},
        "counts": {"params": params, "flops_forward": flops, "params_framework": params},
        "status": "ok", "error": None, "process": {"import_s": 2.0, "cells": 10},
        "environment": {"python": "3.11.7", "cpu_model": "test CPU", "versions": {framework: "1.0"}},
        "started": "2026-11-29T00:00:00+00:00", "wall_s": wall}


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


def written(records, tmp_path):
    """Write the records as a run would and read them back through the loader the pipeline uses."""
    for r in records:
        path = tmp_path / "records" / r["cell"]["task"] / r["cell"]["framework"] / f"{r['cell_id']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r))
    return tidy.load_records(tmp_path / "records")


@pytest.fixture
def values(tmp_path):
    return analysis.analyse_learned(written(study(), tmp_path), tmp_path / "generated")


def flat(text: str) -> str:
    return " ".join(text.split())


# ---- numbers ------------------------------------------------------------------------------------

def test_mean_and_interval_by_hand(values):
    for arch, acc in ACCURACY.items():
        mean = sum(acc) / 3
        sd = math.sqrt(sum((a - mean) ** 2 for a in acc) / 2)
        assert values[f"kernelsweep/torch-eager/{arch}/test-accuracy"] == f"{100 * mean:.1f}"
        assert values[f"kernelsweep/tensorflow-eager/{arch}/test-accuracy-ci"] == f"{100 * T_2 * sd / math.sqrt(3):.1f}"
        assert values[f"kernelsweep/torch-eager/{arch}/seeds"] == "3"
    assert values["kernelsweep/torch-eager/k5/test-accuracy-ci"] == "1.2"  # 4.303 * 0.005 / sqrt(3) = 0.0124
    assert values["kernelsweep/torch-eager/k3/params"] == f"{counts('k3', blocks(SWEEP['k3']))[0]:,}"
    assert "95\\,\\% CI" in values["kernelsweep/interval"] and "three seeds" in values["kernelsweep/scope"]
    best = flat(values["kernelsweep/best-sentence"]).split(" In TensorFlow")[0]
    assert best.startswith("In PyTorch eager \\texttt{k5} reached the highest mean test accuracy, 97.5\\,$\\pm$\\,1.2")
    assert "overlap its interval" in best and "the smallest of them, \\texttt{k3}, has 19,466 parameters" in best


def test_t_interval():
    mean, ci, n = analysis.t_interval([0.97, 0.975, 0.98])
    assert (mean, n) == (pytest.approx(0.975), 3)
    assert ci == pytest.approx(T_2 * 0.005 / math.sqrt(3))
    one = analysis.t_interval([0.9])
    assert one[0] == 0.9 and math.isnan(one[1]) and one[2] == 1
    assert analysis.t_interval([])[2] == 0


def test_pareto_front_on_a_known_set():
    params = [100, 200, 200, 300, 400, 50, 500, np.nan]
    accuracy = [0.90, 0.95, 0.93, 0.95, 0.97, 0.80, 0.97, 0.99]
    #           front  front  (200 beats) (200 as good, fewer) front front (400 as good, fewer) missing
    assert list(analysis.pareto_front(params, accuracy)) == [True, True, False, False, True, True, False, False]
    assert list(analysis.pareto_front([10, 10], [0.5, 0.5])) == [True, True]  # equal points dominate neither


def test_front_marked_in_the_table_and_sentence(values, tmp_path):
    table = (tmp_path / "generated" / "tables" / "learned_sweep.tex").read_text()
    # k3 (fewest parameters) and k5 (the most accurate) are on the front; k5-b has more parameters than k3 and a
    # lower accuracy, k7 and k3-stack2 more parameters than k5 and lower accuracies.
    assert "On the Pareto front" in values["kernelsweep/pareto-sentence"]
    front = values["kernelsweep/pareto-sentence"].split("in PyTorch eager, ")[1].split(";")[0]
    assert front == r"\texttt{k3} and \texttt{k5}"
    line = next(x for x in table.splitlines() if x.startswith(r"\texttt{k5} "))
    assert r"97.5\,$\pm$\,1.2$^\star$" in line
    assert "$^\\star$" not in next(x for x in table.splitlines() if x.startswith(r"\texttt{k7} "))


def test_matching_read_from_the_widths(values, tmp_path):
    sentence = values["kernelsweep/matching-sentence"]
    assert sentence.startswith(r"Against \texttt{k3}, a single 3$\times$3")
    assert r"\texttt{k5-b} is narrower or wider" in sentence and "equal parameters" in sentence
    table = (tmp_path / "generated" / "tables" / "learned_sweep.tex").read_text()
    assert "equal params" in next(x for x in table.splitlines() if x.startswith(r"\texttt{k5-b}"))
    assert "equal width" in next(x for x in table.splitlines() if x.startswith(r"\texttt{k3-stack2}"))


def test_compute_cost_ratio(values):
    cells = len(SWEEP) * 3  # architectures x seeds, per framework
    whole, one = cells * SWEEP_WALL / LEARNED_WALL, len(SWEEP) * SWEEP_WALL / LEARNED_WALL
    assert values["learned/torch-eager/learned-size/cost-ratio"] == f"{whole:.2f}" == "2.50"
    sentence = flat(values["learned/cost-sentence"])
    assert f"took {cells * SWEEP_WALL:.1f}\\,s of wall-clock time" in sentence
    assert f"{whole:.2f}$\\times$ and one seed of it {one:.2f}$\\times$" in sentence
    assert "the learned run cost less than the whole grid but more than one seed of it" in sentence


def test_cost_verdict_flips_with_the_numbers(tmp_path):
    cheap = analysis.analyse_learned(written(study(size={"wall": 4.0}), tmp_path), tmp_path / "out")
    assert "cost less than even one seed of the grid" in cheap["learned/cost-sentence"]
    dear = analysis.analyse_learned(written(study(size={"wall": 60.0}), tmp_path / "b"), tmp_path / "out2")
    assert "the learned run cost more than the whole grid" in dear["learned/cost-sentence"]


# ---- what was learned ---------------------------------------------------------------------------

def test_learned_radius_kernels_and_maps(values, tmp_path):
    radius = flat(values["learned/radius-sentence"])
    assert "from 2.00 to 1.20 in block 1" in radius and "5$\\times$5 kernels in both blocks, of 7$\\times$7" in radius
    assert values["learned/torch-eager/learned-size/kernels"] == "5, 5"
    assert "kept 32 of 32 maps in block 1 and 40 of 64 in block 2" in values["learned/kept-sentence"]
    assert values["learned/tensorflow-eager/learned-width/maps"] == "32, 40"
    shrunk = (tmp_path / "generated" / "tables" / "learned_shrunk.tex").read_text()
    assert "5/7, 5/7" in shrunk and "32/32, 40/64" in shrunk
    for name in ("learned_pareto", "learned_radius", "learned_maps"):
        assert (tmp_path / "generated" / "figures" / f"{name}.pdf").stat().st_size > 1000


def test_trajectories_start_at_the_initialisation(tmp_path):
    cells = analysis.learned_cells(written(study(), tmp_path))
    traj = analysis.trajectories(cells)
    radius = traj[(traj["quantity"] == "radius") & (traj["unit"] == "torch-eager") & (traj["block"] == 0)]
    assert list(radius.sort_values("epoch")["epoch"]) == [0, 1, 2, 3, 4]
    assert radius[radius["epoch"] == 0]["value"].iloc[0] == 2.0
    maps = traj[(traj["quantity"] == "open_maps") & (traj["block"] == 1) & (traj["unit"] == "torch-eager")]
    assert maps.sort_values("epoch")["value"].tolist() == [64, 58, 52, 46, 40]


def test_shrunk_against_masked_and_exactness(values):
    shrunk = flat(values["learned/shrunk-sentence"])
    params = counts("s", blocks([(32, 5, 1), (64, 5, 1)]))[0]
    assert f"the shrunk \\texttt{{learned-size}} has {params:,} parameters" in shrunk
    assert "0.70$\\times$ the time" in shrunk and "faster than the masked network" in shrunk
    assert "It has the shape of the hand-picked \\texttt{k5}" in shrunk
    assert values["learned/max-logit-difference"] == "$2.0\\times10^{-6}$"
    assert "left the function the network computes unchanged" in values["learned/exact-sentence"]


def test_exactness_sentence_flips(tmp_path):
    out = analysis.analyse_learned(written(study(width={"max_diff": 0.03}), tmp_path), tmp_path / "g")
    assert "crop or prune changed the network" in out["learned/exact-sentence"]
    assert out["learned/max-logit-difference"] == "$3.0\\times10^{-2}$"


# ---- verdicts -----------------------------------------------------------------------------------

def verdicts(tmp_path, name, **kwargs):
    return analysis.analyse_learned(written(study(**kwargs), tmp_path / name), tmp_path / name / "out")


def test_size_verdict_flips_with_the_data(tmp_path):
    best = flat(verdicts(tmp_path, "a")["learned/verdict-size"])
    assert "ranks \\texttt{k5} (5$\\times$5" in best and "learned 5$\\times$5: the size the grid search ranks best" in best
    tied = flat(verdicts(tmp_path, "b", size={"kernels": (3, 3)})["learned/verdict-size"])
    assert "the size of \\texttt{k3}" in tied and "cannot tell the two apart" in tied
    apart = dict(ACCURACY, k3=[0.90, 0.905, 0.91])
    worse = flat(verdicts(tmp_path, "c", accuracy=apart, size={"kernels": (3, 3)})["learned/verdict-size"])
    assert "the intervals apart: not the size it ranks best" in worse and "ranks 3 of 3" in worse
    mixed = flat(verdicts(tmp_path, "d", size={"kernels": (5, 3)})["learned/verdict-size"])
    assert "a different size per block" in mixed and "one of its blocks learned the best size" in mixed


def test_accuracy_verdict_flips_with_the_data(tmp_path):
    within = flat(verdicts(tmp_path, "a")["learned/verdict-accuracy"])
    assert "\\texttt{learned-size} reached 97.4\\,\\%" in within
    assert "within the 95\\,\\% CI of the best, with as many parameters as it" in within
    assert "\\texttt{k5} is both at most as large and at least as accurate" in within  # k5: same size, 97.5 %
    below = flat(verdicts(tmp_path, "b", size={"test": 0.90})["learned/verdict-accuracy"])
    assert "below the 95\\,\\% CI of the best" in below
    above = flat(verdicts(tmp_path, "c", size={"test": 0.995})["learned/verdict-accuracy"])
    assert "above the 95\\,\\% CI of the best" in above and "no hand-picked network is both" in above.split("TensorFlow")[0]
    width = within.split("\\texttt{learned-width} reached")[1].split(" In ")[0]
    assert "fewer parameters than it" in width


def test_one_seed_has_no_interval_and_says_so(tmp_path):
    out = verdicts(tmp_path, "a", seeds=(0,))
    assert "one seed per network and setup" in out["kernelsweep/interval"]
    assert not any(k.endswith("test-accuracy-ci") for k in out)
    assert "(one seed: ranked by that run alone)" in out["kernelsweep/best-sentence"]
    assert "with one seed per hand-picked network there is no interval" in out["learned/verdict-accuracy"]
    assert "one seed per network and setup in this run" in out["learned/seeds-threat"]


def test_several_learned_seeds(tmp_path):
    records = study()
    for framework in FRAMEWORKS:
        records += [learned_record(framework, "size", seed=s, kernels=k, test=t)
                    for s, k, t in [(1, (5, 5), 0.97), (2, (3, 3), 0.96)]]
    out = analysis.analyse_learned(written(records, tmp_path), tmp_path / "g")
    mean, ci, _ = analysis.t_interval([0.974, 0.97, 0.96])
    assert out["learned/torch-eager/learned-size/test-accuracy"] == f"{100 * mean:.1f}"
    assert f"{100 * mean:.1f}\\,$\\pm$\\,{100 * ci:.1f}" in out["learned/verdict-accuracy"]
    assert "(in 2 of 3 seeds; 3$\\times$3, 3$\\times$3 in 1)" in out["learned/radius-sentence"]
    assert "over 3 seeds" in out["learned/radius-sentence"]
    assert "5/7, 5/7 (2 of 3)" in (tmp_path / "g" / "tables" / "learned_shrunk.tex").read_text()


# ---- missing and failed cells -------------------------------------------------------------------

def test_no_learned_records_gives_placeholders_and_every_key(tmp_path):
    out = analysis.analyse_learned(written(study(learned=False), tmp_path), tmp_path / "g")
    assert set(analysis.FIXED) <= set(out)
    assert "no training cells of the \\texttt{learned} study" in out["learned/scope"]
    assert "nothing to hold against the grid search" in out["learned/verdict-size"]
    assert "No network was shrunk" in out["learned/shrunk-sentence"]
    assert "97.5" in out["kernelsweep/best-sentence"]  # the grid search still reports
    assert "This run has no training cells of the learned study" in (
        tmp_path / "g" / "tables" / "learned_shrunk.tex").read_text()
    for name in ("learned_pareto", "learned_radius", "learned_maps"):
        assert (tmp_path / "g" / "figures" / f"{name}.pdf").exists()


def test_no_records_at_all(tmp_path):
    out = analysis.analyse_learned([], tmp_path)
    assert set(analysis.FIXED) <= set(out)
    assert all(v for v in out.values())
    assert "no training cells of the \\texttt{kernel} study" in out["kernelsweep/scope"]
    assert "This run trained no network" in out["learned/data-sentence"]


def test_failed_learned_cell_appears_as_failed(tmp_path):
    out = analysis.analyse_learned(written(study(failed=("width",)), tmp_path), tmp_path / "g")
    assert "2 cells" not in out["learned/failed-sentence"]
    assert "Two cells of the \\texttt{learned} study failed" in out["learned/failed-sentence"]
    assert tables.tt("learned_learned-width_tensorflow-eager_cpu1-none_b64_s0_train") in out["learned/failed-sentence"]
    assert "SpecError: every gate closed" in out["learned/failed-sentence"]
    assert "every run of \\texttt{learned-width} failed" in out["learned/kept-sentence"]
    table = (tmp_path / "g" / "tables" / "learned_shrunk.tex").read_text()
    row = next(x for x in table.splitlines() if x.startswith(r"\texttt{learned-width}"))
    assert row.count(r"\emph{failed}") >= 6 and "0 (+1 failed)" in row
    assert "\\texttt{learned-size} reached" in out["learned/verdict-accuracy"]  # the other cells still report


def test_failed_sweep_cell_is_counted_as_failed(tmp_path):
    records = study()
    bad = next(r for r in records if r["cell_id"] == "kernel_k7_torch-eager_cpu1-none_b64_s1_train")
    bad.update(status="failed", error="Traceback\nRuntimeError: out of memory")
    del bad["training"]
    out = analysis.analyse_learned(written(records, tmp_path), tmp_path / "g")
    assert "One training cell of the \\texttt{kernel} study failed" in out["kernelsweep/failed-sentence"]
    assert out["kernelsweep/torch-eager/k7/seeds"] == "2"
    table = (tmp_path / "g" / "tables" / "learned_sweep.tex").read_text()
    assert "2 (+1 failed)" in table


def test_analysis_imports_no_framework():
    code = ("import sys, convbench.analysis.learned; "
            "sys.exit(bool({'torch', 'tensorflow'} & set(sys.modules)))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# ---- the paper section builds -------------------------------------------------------------------

def paper_dir(tmp_path: Path) -> Path:
    """A paper dir whose main.tex has paper/main.tex's preamble (its \\cb) and inputs only this section."""
    main = (ROOT / "paper" / "main.tex").read_text()
    preamble = main[:main.index(r"\input{macros.tex}") + len(r"\input{macros.tex}")]
    paper = tmp_path / "paper"
    (paper / "sections").mkdir(parents=True)
    (paper / "main.tex").write_text(preamble + "\n\\begin{document}\n\\input{sections/learned}\n"
                                    "\\bibliographystyle{plain}\n\\bibliography{refs}\n\\end{document}\n")
    shutil.copy(ROOT / "paper" / "sections" / "learned.tex", paper / "sections")
    shutil.copy(ROOT / "paper" / "refs.bib", paper)
    return paper


def section_keys() -> set[str]:
    import re

    return set(re.findall(r"\\cb\{([^}]+)\}", (ROOT / "paper" / "sections" / "learned.tex").read_text()))


def test_section_quotes_only_fixed_keys():
    assert section_keys() <= set(analysis.FIXED)


needs_latex = pytest.mark.skipif(shutil.which("latexmk") is None or shutil.which("pdftotext") is None,
                                 reason="latexmk and pdftotext (TeX Live, poppler-utils) are needed to build the paper")


@needs_latex
@pytest.mark.parametrize("learned", [True, False])
def test_section_builds_and_shows_the_numbers(tmp_path, learned):
    generated = tmp_path / "generated"
    values = analysis.analyse_learned(written(study(learned=learned), tmp_path), generated)
    write_macros(values, generated / "macros.tex")
    pdf = build_pdf(generated, tmp_path / "paper.pdf", paper_dir=paper_dir(tmp_path))
    text = flat(subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout)
    assert "Learning the kernel size and the number of filters" in text
    assert "97.5" in text  # k5's mean accuracy over the fixture's seeds
    assert "Louizos" in text  # the reference resolved
    if learned:
        assert f"{counts('s', blocks([(32, 5, 1), (64, 5, 1)]))[0]:,}" in text  # the shrunk learned-size net
    else:
        assert "no training cells of the learned study" in text

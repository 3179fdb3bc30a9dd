"""The activation study: maxout against ReLU over seeds and training fractions, with intervals and verdicts.

Fixture records follow the measuring side's format: train cells with cell.train_fraction (and _f<fraction> in the id
below 1.0), seeds 0-2, the final epoch's accuracies and loss; speed cells with raw samples and memory (saved bytes in
PyTorch, null in TensorFlow, peak null off GPUs).
"""
import importlib.util
import json
import math
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from convbench import spec
from convbench.analysis import activation, analyse, figures, macros, tables, tidy

_spec = importlib.util.spec_from_file_location("analysis_fixtures", Path(__file__).with_name("test_analysis.py"))
base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(base)

T_2 = 4.302652729911275  # t quantile 0.975 at 2 degrees of freedom, from a printed table
# First block's (filters, pieces); the second block has twice the filters. Names say nothing the analysis reads.
ARCHS = {"relu": (48, 1), "maxout2-eqparams": (48, 2), "maxout2-eqwidth": (96, 2)}
# Per arch and training fraction: test accuracy and train/test gap of seeds 0, 1, 2.
TEST = {"relu": [0.95, 0.96, 0.97], "maxout2-eqparams": [0.89, 0.90, 0.91], "maxout2-eqwidth": [0.94, 0.97, 0.99]}
GAP = {"relu": {1.0: [0.01, 0.02, 0.03], 0.25: [0.06, 0.08, 0.08], 0.1: [0.08, 0.10, 0.09]},
       "maxout2-eqparams": {1.0: [0.01, 0.02, 0.03], 0.25: [0.10, 0.12, 0.14], 0.1: [0.21, 0.23, 0.25]},
       "maxout2-eqwidth": {1.0: [0.02, 0.02, 0.02], 0.25: [0.05, 0.07, 0.09], 0.1: [0.07, 0.10, 0.13]}}
# Median forward and backward time, s; maxout at equal filters is slower backward, at equal width faster forward.
TIMES = {"relu": (0.010, 0.020), "maxout2-eqparams": (0.010, 0.040), "maxout2-eqwidth": (0.005, 0.020)}
SAVED = {"relu": 1_000_000, "maxout2-eqparams": 600_000, "maxout2-eqwidth": 2_000_000}


def arch_dict(name, in_channels, archs=ARCHS):
    width, pieces = archs[name]
    return {"name": name, "in_channels": in_channels, "num_classes": 10,
            "blocks": [{"width": width * m, "kernel": 3, "depth": 1, "activation": "maxout" if pieces > 1 else "relu",
                        "pieces": pieces, "pool": 2} for m in (1, 2)]}


def with_arch(record, name, archs, image_size):
    archd = arch_dict(name, record["cell"]["arch"]["in_channels"], archs)
    s = spec.ArchSpec.from_dict(name, archd, archd["in_channels"], 10)
    record["cell"]["arch"] = archd
    record["counts"] = {"params": spec.param_count(s), "flops_forward": spec.forward_flops(s, image_size)}
    return record


def train_record(framework, name, seed, fraction, test, gap, loss=0.1, archs=ARCHS):
    record = with_arch(base.make_record("activation", "train", framework, "relu", seed=seed), name, archs, 8)
    record["cell"]["train_fraction"] = fraction
    suffix = "" if fraction == 1 else f"_f{fraction:g}"
    record["cell_id"] = f"activation_{name}_{framework}-eager_cpu1-none_b64_s{seed}{suffix}_train"
    record["training"]["epochs"][-1] |= {"test_accuracy": test, "train_accuracy": test + gap, "train_loss": loss}
    record["training"]["dataset"]["train_size"] = round(1347 * fraction)
    return record


def speed_record(framework, name, forward, backward, saved, archs=ARCHS):
    record = with_arch(base.make_record("activation", "speed", framework, "relu"), name, archs, 16)
    record["cell_id"] = f"activation_{name}_{framework}-eager_cpu1-none_b64_s0_speed"
    rng = np.random.default_rng(zlib.crc32(record["cell_id"].encode()))
    record["timings"]["phases"] |= {phase: base.summary(median, rng, 30)
                                    for phase, median in [("forward", forward), ("backward", backward)]}
    record["memory"] = {"saved_for_backward_bytes": saved if framework == "torch" else None, "peak_bytes": None}
    return record


def study(test=TEST, gap=GAP, times=TIMES, seeds=(0, 1, 2), fractions=(0.1, 0.25, 1.0), archs=ARCHS, loss=None):
    """Records of the whole study in both frameworks; archs maps the fixture's names to (filters, pieces)."""
    records = []
    for framework in base.FRAMEWORKS:
        for name in archs:
            key = name if name in TEST else list(TEST)[list(archs).index(name)]  # renamed archs keep their data
            for fraction in fractions:
                for seed in seeds:
                    records.append(train_record(framework, name, seed, fraction, test[key][seed] - (1 - fraction) / 2,
                                                gap[key][fraction][seed], (loss or {}).get((key, seed), 0.1), archs))
            records.append(speed_record(framework, name, *times[key], SAVED[key], archs))
    return records


def values_of(records):
    df = tidy.tidy(records)
    return macros.macros(df, tidy.environment(records), samples=tidy.samples(records))


def verdict(values, arch, setup="torch-eager"):
    return values[f"activation/{setup}/{arch}-vs-relu/verdict"]


@pytest.fixture(scope="module")
def records():
    return study()


def test_tidy_reads_the_training_fraction_and_memory(records):
    df = tidy.tidy(records)
    assert sorted(df[df.task == "train"].train_fraction.unique()) == [0.1, 0.25, 1.0]
    assert (df[df.task == "speed"].train_fraction == 1.0).all()
    saved = df[df.metric == "saved_bytes"]
    assert set(saved.framework) == {"torch"} and saved.set_index("arch").value["maxout2-eqwidth"] == 2_000_000
    assert df[df.arch == "maxout2-eqparams"].maps.iloc[0] == "24, 48"
    old = base.make_record("kernel", "train", "torch", "k3")  # a record from before fractions
    assert tidy.tidy([old]).train_fraction.unique().tolist() == [1.0]


def test_mean_and_interval_match_a_hand_computation(records):
    stats = activation.seed_stats(tidy.tidy(records))
    relu = stats[(stats.setup == "torch-eager") & (stats.arch == "relu") & (stats.train_fraction == 1.0)].iloc[0]
    x = np.array(TEST["relu"])
    half = T_2 * x.std(ddof=1) / math.sqrt(3)
    assert (relu.test, relu.test_ci, relu.seeds) == (pytest.approx(x.mean()), pytest.approx(half), 3)
    gap = stats[(stats.setup == "tensorflow-eager") & (stats.arch == "maxout2-eqparams")
                & (stats.train_fraction == 0.1)]
    assert gap.gap_ci.iloc[0] == pytest.approx(T_2 * 0.02 / math.sqrt(3))  # 0.21, 0.23, 0.25: sd 0.02
    change = activation.gap_growth(tidy.tidy(records)).set_index(["setup", "arch"])
    growth = np.array(GAP["relu"][0.1]) - np.array(GAP["relu"][1.0])  # seed by seed
    assert change.loc[("torch-eager", "relu"), "change"] == pytest.approx(growth.mean())
    assert change.loc[("torch-eager", "relu"), "change_ci"] == pytest.approx(T_2 * growth.std(ddof=1) / math.sqrt(3))
    values = values_of(records)
    assert values["activation/torch-eager/relu/test-accuracy-mean"] == f"{100 * x.mean():.1f}"
    assert values["activation/torch-eager/relu/test-accuracy-ci"] == f"{100 * half:.1f}"
    assert values["activation/torch-eager/relu/gap-f10"] == f"{100 * np.mean(GAP['relu'][0.1]):.1f}"


def test_variants_are_read_from_the_spec_not_the_name():
    archs = {"a": (48, 1), "b": (96, 2), "c": (48, 2)}  # ReLU, equal width, equal filters
    v = activation.variants(tidy.tidy(study(archs=archs, fractions=(1.0,)))).set_index("arch")
    assert v.loc["b", ["k", "matching", "reference"]].tolist() == [2, "width", "a"]
    assert v.loc["c", ["k", "matching", "reference"]].tolist() == [2, "filters", "a"]
    assert v.loc["a", "matching"] == "reference" and v.loc["c", "maps"] == "24, 48"
    three = {"relu": (48, 1), "maxout2-eqparams": (48, 3), "maxout2-eqwidth": (144, 3)}  # names lie: k = 3
    v = activation.variants(tidy.tidy(study(archs=three, fractions=(1.0,)))).set_index("arch")
    assert v.loc["maxout2-eqwidth", ["k", "matching"]].tolist() == [3, "width"]
    assert v.loc["maxout2-eqparams", "maps"] == "16, 32"


def test_accuracy_verdict_follows_the_intervals(records):
    values = values_of(records)
    assert "lower than ReLU's, the intervals apart" in verdict(values, "maxout2-eqparams")
    assert "not distinguishable at this number of seeds" in verdict(values, "maxout2-eqwidth")
    assert r"89.0\,$\pm$\," not in verdict(values, "maxout2-eqparams")  # the mean, not seed 0
    flipped = values_of(study(test={**TEST, "maxout2-eqparams": [0.995, 1.0, 1.0]}))
    assert "higher than ReLU's, the intervals apart" in verdict(flipped, "maxout2-eqparams")


def test_overfitting_verdict_follows_the_change_of_the_gap(records):
    values = values_of(records)
    assert "From 100\\,\\% to 10\\,\\% of the training split" in verdict(values, "maxout2-eqparams")
    assert "it overfit more than ReLU" in verdict(values, "maxout2-eqparams")
    assert "did not overfit distinguishably more or less than ReLU" in verdict(values, "maxout2-eqwidth")
    flat = {1.0: [0.01, 0.02, 0.03], 0.25: [0.01, 0.02, 0.03], 0.1: [0.01, 0.02, 0.02]}
    assert "it overfit less than ReLU" in verdict(values_of(study(gap={**GAP, "maxout2-eqparams": flat})),
                                                  "maxout2-eqparams")


def test_one_seed_gives_no_interval_and_no_verdict():
    values = values_of(study(seeds=(0,)))
    assert "one seed, so no interval and no verdict" in verdict(values, "maxout2-eqparams")
    assert "one seed, so no verdict on overfitting" in verdict(values, "maxout2-eqparams")
    assert "activation/torch-eager/relu/test-accuracy-ci" not in values
    table = activation.accuracy_table(tidy.tidy(study(seeds=(0,))))
    assert "has no interval" in table and r"$\pm$" not in table.split(r"\midrule", 1)[1]


def test_time_params_and_memory_against_relu(records):
    values = values_of(records)
    text = verdict(values, "maxout2-eqparams")
    assert "not distinguishable from ReLU in the forward pass" in text
    assert "slower than ReLU in the backward pass" in text
    assert "faster than ReLU in the forward pass" in verdict(values, "maxout2-eqwidth")
    ratio = float(values["activation/torch-eager/maxout2-eqparams-over-relu/backward-ratio"])
    assert ratio == pytest.approx(2.0, abs=0.1)
    key = "activation/torch-eager/maxout2-eqparams-over-relu/backward-ratio"
    lo, hi = float(values[f"{key}-lo"]), float(values[f"{key}-hi"])
    assert lo <= ratio <= hi
    df = tidy.tidy(records)
    params = df[df.task == "train"].drop_duplicates("arch").set_index("arch").params
    assert values["activation/torch-eager/maxout2-eqwidth-over-relu/params-ratio"] == tables.ratio(
        params["maxout2-eqwidth"] / params["relu"])
    assert values["activation/torch-eager/maxout2-eqwidth-over-relu/saved-ratio"] == "2.00"
    assert "activation/tensorflow-eager/maxout2-eqwidth-over-relu/saved-ratio" not in values  # TF has no hook


def test_diverged_runs_are_counted_and_named():
    values = values_of(study(loss={("maxout2-eqwidth", 1): float("nan")}))
    assert "3 of its 9 training runs diverged" in verdict(values, "maxout2-eqwidth")  # seed 1 at every fraction
    assert r"\texttt{maxout2-eqwidth} in PyTorch eager (3 of 9 runs)" in values["activation/diverged-sentence"]
    assert "No training run" in values_of(study())["activation/diverged-sentence"]


def test_tables_show_every_fraction_and_a_dash_where_memory_is_not_measured(records):
    df = tidy.tidy(records)
    accuracy = activation.accuracy_table(df)
    for header in ["10\\%", "25\\%", "100\\%", "change", "Test (\\%)"]:
        assert header in accuracy
    stats = activation.seed_stats(df)
    row = stats[(stats.setup == "tensorflow-eager") & (stats.arch == "maxout2-eqwidth")
                & (stats.train_fraction == 0.25)]
    assert activation.pm(row.gap.iloc[0], row.gap_ci.iloc[0]) in accuracy
    cost = activation.cost_table(df)
    torch_rows, tf_rows = cost.split(r"\textit{TensorFlow eager}")
    assert activation.mib(SAVED["maxout2-eqwidth"]) in torch_rows
    assert all(line.rstrip(" \\").endswith("--") for line in tf_rows.splitlines() if line.startswith(r"\texttt"))
    assert "a dash in TensorFlow eager, which has no such hook" in cost
    assert "Peak" not in cost.split(r"\midrule")[0]  # no cell measured peak memory: no column, a note
    assert "recorded on GPUs only" in cost and "equal filters" in cost and "24, 48" in cost


def test_figures_of_the_study(records, tmp_path):
    df = tidy.tidy(records)
    for name in ("activation_accuracy", "activation_gap", "activation_time"):
        assert figures.FIGURES[name](df, tmp_path / f"{name}.pdf").read_bytes().startswith(b"%PDF")
    kernel_only = tidy.tidy([base.make_record("kernel", "speed", "torch", "k5")])
    for name in ("activation_accuracy", "activation_gap", "activation_time"):
        assert figures.FIGURES[name](kernel_only, tmp_path / f"none_{name}.pdf").exists()


def test_kernel_sentences_and_accuracy_table_ignore_smaller_fractions(tmp_path):
    records = tidy.load_records(base.write_run(tmp_path))
    before, table = values_of(records), tables.accuracy(tidy.tidy(records))
    smaller = []
    for r in records:
        if r["cell"]["task"] == "train" and r["status"] == "ok":
            r = json.loads(json.dumps(r))
            r["cell"]["train_fraction"] = 0.25
            r["cell_id"] = r["cell_id"].replace("_train", "_f0.25_train")
            r["training"]["epochs"][-1]["test_accuracy"] = 0.5  # would move every median if mixed in
            smaller.append(r)
    after = values_of(records + smaller)
    for key in ["kernel/sentence", "kernel/findings", "kernel/torch-eager/k5/test-accuracy", "data/sentence"]:
        assert after[key] == before[key]
    assert tables.accuracy(tidy.tidy(records + smaller)) == table


def test_without_the_study_every_key_still_exists():
    records = [base.make_record("kernel", "speed", "torch", "k5")]
    values = values_of(records)
    for key in ["scope", "intro", "mfm", "verdicts", "fractions", "level", "seeds-sentence", "diverged-sentence"]:
        assert f"activation/{key}" in values
    assert "no maxout variant" in values["activation/verdicts"]


def test_analyse_writes_the_study_tables(records, tmp_path):
    root = tmp_path / "records"
    for r in records:
        path = root / f"{r['cell_id']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r))
    out = analyse(root, tmp_path / "generated")
    assert "tab:activation-accuracy" in (out / "tables" / "activation_accuracy.tex").read_text()
    assert "tab:activation-cost" in (out / "tables" / "activation_cost.tex").read_text()
    assert (out / "figures" / "activation_gap.pdf").exists()
    assert pd.read_csv(out / "tidy.csv").train_fraction.notna().all()


BASE_ARCHS = {name: (base.ARCHS[name][0][0], base.ARCHS[name][0][3]) for name in base.STUDIES["activation"]}
OFFSETS = [0.0, 0.002, -0.002]  # seed 0 keeps base's accuracy


def more_seeds(records_dir):
    """Seeds 1 and 2 on the whole training split and seeds 0-2 on a quarter of it, beside write_run's activation
    cells (seed 0, whole split): maxout2-eqwidth beats ReLU with intervals apart, maxout2-eqparams overlaps it."""
    written = []
    for framework in base.FRAMEWORKS:
        for name in BASE_ARCHS:
            for fraction, seeds in [(1.0, (1, 2)), (0.25, (0, 1, 2))]:
                for seed in seeds:
                    test = base.ACCURACY[name] + OFFSETS[seed] - (1 - fraction) / 10
                    r = train_record(framework, name, seed, fraction, test, 0.02 + (1 - fraction) / 10 + OFFSETS[seed],
                                     archs=BASE_ARCHS)
                    path = records_dir / "train" / framework / f"{r['cell_id']}.json"
                    path.write_text(json.dumps(r, indent=1))
                    written.append(r)
    return written

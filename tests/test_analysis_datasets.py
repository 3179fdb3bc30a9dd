"""A study trained on several data sets (studies.<name>.datasets): every paired comparison stays within one data
set (and one training fraction), and each data set is reported apart, under a key that names it."""
import copy

import numpy as np
import pytest
from builders import activation as act
from builders import kernel as ker

from convbench.analysis.activation.verdicts import verdicts as activation_verdicts
from convbench.analysis.kernel import values as kernel
from convbench.analysis.overview import tables as overview_tables

OTHER = "mnist5k"  # the second data set: the same cells, another name, 20 points lower and a wobble of its own


def on_other(records, study):
    """Every train record again as trained on OTHER (its own cell id), test accuracy 20 points lower plus 1 point
    times seed."""
    out = []
    for r in records:
        if r["cell"]["task"] != "train":
            continue
        r = copy.deepcopy(r)
        r["cell_id"] = r["cell_id"].replace(f"{study}_", f"{study}-{OTHER}_", 1)
        r["training"]["dataset"]["name"] = OTHER
        r["cell"]["settings"] |= {"data": {"dataset": OTHER}, "dataset_sweep": True}  # as cells.py writes it
        for epoch in r["training"]["epochs"]:
            epoch["test_accuracy"] -= 0.2 - 0.01 * r["cell"]["seed"] * (r["cell"]["arch"]["name"].startswith("k5")
                                                                        or "eqparams" in r["cell"]["arch"]["name"])
        out.append(r)
    return out


def test_kernel_pairs_never_cross_data_sets(tmp_path):
    records = ker.kernel_records()
    run = ker.published(tmp_path, records + on_other(records, "kernel"))
    trained = run.tidy[run.tidy["task"] == "train"]
    assert set(trained["dataset"]) == {"digits", OTHER}  # the tidy table (read back from tidy.csv) names each row's
    found = ker.verdicts(run)
    digits, other = (found[f"kernel/torch-eager-{d}/k5-vs-k3-stack2/test-accuracy-diff"] for d in ("digits", OTHER))
    same = [ker.seed_accuracy("k5", s) - ker.seed_accuracy("k3-stack2", s) for s in ker.SEEDS]
    assert digits.n == other.n == len(ker.SEEDS)  # five pairs each, not ten, not one set's seeds dropped
    assert digits.estimate == pytest.approx(np.mean(same))
    assert other.estimate == pytest.approx(np.mean(same) + 0.01 * np.mean(ker.SEEDS))
    assert not any(k.startswith("kernel/torch-eager/") and "-vs-" in k for k in found)  # no pair of both sets
    table = overview_tables.accuracy(run)
    assert "PyTorch eager, digits" in table and f"PyTorch eager, {OTHER}" in table
    archs = overview_tables.architectures(run)  # a column per trained data set: its classes change the head
    assert "train, digits" in archs and f"train, {OTHER}" in archs
    assert {p.label for p in kernel.comparisons(run) if p.test_diffs} == {"PyTorch eager, digits",
                                                                          f"PyTorch eager, {OTHER}"}


def test_activation_pairs_never_cross_data_sets(tmp_path):
    records = act.study()
    run = act.published(records + on_other(records, "activation"), tmp_path)
    digits, other = (act.found(run, f"torch-eager-{d}")[("maxout2-eqparams", "test-accuracy-diff")]
                     for d in ("digits", OTHER))
    same = [a - b for a, b in zip(act.TEST["maxout2-eqparams"], act.TEST["relu"])]
    assert digits.n == other.n == len(act.SEEDS)
    assert digits.estimate == pytest.approx(np.mean(same))
    assert other.estimate == pytest.approx(np.mean(same) + 0.01 * np.mean(act.SEEDS))
    assert not [k for k in act.found(run) if k[1].endswith("-diff")]  # no accuracy pair of both sets (times stay)
    assert all(v.n == len(act.SEEDS) for v in activation_verdicts(run) if v.key.endswith("/gap-change-diff"))
    # the headline repeats one data set's verdicts and says which (the abstract left it unsaid)
    from convbench.analysis.activation.verdicts import summary_values
    assert summary_values(run, activation_verdicts(run))["activation/headline-setup"] == "PyTorch eager, digits"


def test_train_sizes_print_as_whole_counts(tmp_path):
    """Two data sets of different sizes get a Train size column: a count, '2000', never '2000.0'."""
    records = ker.kernel_records()
    other = on_other(records, "kernel")
    for r in other:
        r["training"]["dataset"]["train_size"] = 2 * r["training"]["dataset"].get("train_size", 1000)
    run = ker.published(tmp_path, records + other)
    sizes = sorted(run.tidy[run.tidy["task"] == "train"]["train_size"].dropna().unique())
    table = overview_tables.accuracy(run)
    assert len(sizes) == 2 and "Train size" in table
    assert all(f"{s:.0f}" in table and f"{s:.1f}" not in table for s in sizes)

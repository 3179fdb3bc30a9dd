"""The activation study: maxout against ReLU over seeds and training fractions, with intervals and verdicts.

Fixture records follow the measuring side's format: train cells with cell.train_fraction (and _f<fraction> in the id
below 1.0), seeds 0-4 in PyTorch (cell.settings.role 'replicate') and seed 0 repeated in TensorFlow ('repeat'), the
final epoch's accuracies and loss, training.converged; speed cells with raw samples and memory (saved bytes in
PyTorch, null in TensorFlow, peak null off GPUs). They go through write_tidy and read_run, as in the pipeline.
"""
import json
import math
import re

import numpy as np
import pytest
from builders.activation import (
    GAP,
    SAVED,
    SECTION,
    SEEDS,
    T_4,
    TEST,
    arch_dict,
    found,
    published,
    study,
)

from convbench import spec
from convbench.analysis import analyse_study
from convbench.analysis.activation import STUDY, data, tables
from convbench.analysis.activation.verdicts import values, verdicts
from convbench.analysis.formatting import percent, pm, ratio
from convbench.analysis.latex import read_macros
from convbench.analysis.registry import STUDIES
from convbench.analysis.stats import Outcome


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return published(study(), tmp_path_factory.mktemp("activation"))


def test_tidy_reads_the_training_fraction_and_memory(run):
    df = run.tidy
    assert sorted(df[df.task == "train"].train_fraction.unique()) == [0.1, 0.25, 1.0]
    assert (df[df.task == "speed"].train_fraction == 1.0).all()
    saved = df[df.metric == "saved_bytes"]
    assert set(saved.framework) == {"torch"} and saved.set_index("arch").value["maxout2-eqwidth"] == 2_000_000
    assert df[df.arch == "maxout2-eqparams"].maps.iloc[0] == "24, 48"


def test_mean_and_interval_match_a_hand_computation(run):
    stats = data.seed_stats(run.tidy)
    relu = stats[(stats.setup == "torch-eager") & (stats.arch == "relu") & (stats.train_fraction == 1.0)].iloc[0]
    x = np.array(TEST["relu"])
    half = T_4 * x.std(ddof=1) / math.sqrt(5)
    assert (relu.test, relu.test_ci, relu.seeds) == (pytest.approx(x.mean()), pytest.approx(half), 5)
    assert set(stats.setup) == {"torch-eager"}  # the TensorFlow repeat is no replicate
    gap = stats[(stats.setup == "torch-eager") & (stats.arch == "maxout2-eqparams") & (stats.train_fraction == 0.1)]
    g = np.array(GAP["maxout2-eqparams"][0.1])
    assert gap.gap_ci.iloc[0] == pytest.approx(T_4 * g.std(ddof=1) / math.sqrt(5))
    change = data.gap_growth(run.tidy).set_index(["setup", "arch"])
    growth = np.array(GAP["relu"][0.1]) - np.array(GAP["relu"][1.0])  # seed by seed
    assert change.loc[("torch-eager", "relu"), "change"] == pytest.approx(growth.mean())
    assert change.loc[("torch-eager", "relu"), "change_ci"] == pytest.approx(T_4 * growth.std(ddof=1) / math.sqrt(5))
    v = values(run)
    assert v["activation/torch-eager/relu/test-accuracy-mean"] == percent(x.mean())
    assert v["activation/torch-eager/relu/test-accuracy-ci"] == percent(half)
    assert v["activation/torch-eager/relu/gap-f10"] == percent(np.mean(GAP["relu"][0.1]))
    assert v["activation/torch-eager/relu/test-accuracy"] == percent(np.median(x))  # the cell's median
    assert (v["activation/seeds"], v["activation/t-quantile"], v["activation/intervals"]) == ("5", f"{T_4:.2f}", "1")
    assert v["activation/fractions"] == r"10\,\%, 25\,\% and 100\,\%"
    assert v["activation/training"] == (r"\texttt{digits} at 10\,\%, 25\,\% and 100\,\% of its training split "
                                        "(135, 337 and 1347 images)")
    assert (v["activation/fraction-smallest"], v["activation/fraction-largest"]) == ("10", "100")


def test_variants_are_read_from_the_spec_not_the_name(tmp_path):
    archs = {"a": (48, 1), "b": (96, 2), "c": (48, 2)}  # ReLU, equal width, equal filters
    v = data.variants(published(study(archs=archs, fractions=(1.0,)), tmp_path).tidy).set_index("arch")
    assert v.loc["b", ["k", "matching", "reference"]].tolist() == [2, "width", "a"]
    assert v.loc["c", ["k", "matching", "reference"]].tolist() == [2, "filters", "a"]
    assert v.loc["a", "matching"] == "reference" and v.loc["c", "maps"] == "24, 48"
    three = {"relu": (48, 1), "maxout2-eqparams": (48, 3), "maxout2-eqwidth": (144, 3)}  # names lie: k = 3
    v = data.variants(published(study(archs=three, fractions=(1.0,)), tmp_path).tidy).set_index("arch")
    assert v.loc["maxout2-eqwidth", ["k", "matching"]].tolist() == [3, "width"]
    assert v.loc["maxout2-eqparams", "maps"] == "16, 32"


def test_accuracy_verdict_is_paired_by_seed_and_holm_corrected(run, tmp_path):
    v = found(run)
    lower = v[("maxout2-eqparams", "test-accuracy-diff")]
    diffs = np.array(TEST["maxout2-eqparams"]) - np.array(TEST["relu"])
    assert (lower.outcome, lower.reference, lower.unit, lower.n) == (Outcome.LOWER, "relu", "points", 5)
    assert lower.estimate == pytest.approx(diffs.mean())
    assert lower.hi < 0
    same = v[("maxout2-eqwidth", "test-accuracy-diff")]
    assert same.outcome is Outcome.UNDECIDED and same.lo < 0 < same.hi
    # Holm over the family of accuracy and gap verdicts (2 variants x 2 quantities, one replicate setup)
    family = [x for k, x in v.items() if x.unit == "points" and not k[1].startswith("gap-diff-f")]  # a family apart
    levels = sorted(x.level for x in family)  # the smallest p-value first at 0.05/4, then 0.05/3, then stop
    assert len(family) == 4 and levels == pytest.approx([0.975, 0.975, 1 - 0.05 / 3, 1 - 0.05 / 4])
    flipped = published(study(test={**TEST, "maxout2-eqparams": [0.995, 0.999, 1.0, 0.998, 0.999]}), tmp_path)
    assert found(flipped)[("maxout2-eqparams", "test-accuracy-diff")].outcome is Outcome.HIGHER
    counts = values(run)
    assert [counts[f"activation/accuracy-{w}"] for w in ("compared", "higher", "lower", "undecided")] == [
        "2", "0", "1", "1"]


def test_unpaired_intervals_overlap_where_the_paired_one_decides(tmp_path):
    """A seed effect shared by both networks: +2.8, +3.0, +3.2 points per seed on top of it."""
    shift = [0.0, 0.05, -0.05]
    test = {"relu": [0.90 + x for x in shift], "maxout2-eqparams": [0.80 + x for x in shift],
            "maxout2-eqwidth": [0.90 + x + d for x, d in zip(shift, (0.028, 0.030, 0.032))]}
    run_ = published(study(test=test, seeds=(0, 1, 2), fractions=(1.0,)), tmp_path)
    v = found(run_)[("maxout2-eqwidth", "test-accuracy-diff")]
    assert v.estimate == pytest.approx(0.030) and v.outcome is Outcome.HIGHER and v.lo > 0.01 and v.n == 3
    stats = data.seed_stats(run_.tidy).set_index("arch")
    gap = stats.loc["maxout2-eqwidth", "test"] - stats.loc["relu", "test"]
    assert abs(gap) < stats.loc["maxout2-eqwidth", "test_ci"] + stats.loc["relu", "test_ci"]  # unpaired: overlap


def test_equal_parameters_is_its_own_matching(tmp_path):
    """A maxout network whose widths give ReLU's parameters within 2 % matches by parameters."""
    archs = {"relu": (48, 1), "maxout2-eqparams": (48, 2), "maxout2-eqwidth": (96, 2)}
    params = {n: spec.param_count(spec.ArchSpec.from_dict(n, arch_dict(n, 1, archs), 1, 10)) for n in archs}
    # widths 68/136 with two pieces: 34/68 maps leave the blocks
    archs["maxout2-eqparams"] = (68, 2)
    mine = spec.param_count(spec.ArchSpec.from_dict("m", arch_dict("maxout2-eqparams", 1, archs), 1, 10))
    assert abs(mine / params["relu"] - 1) <= data.EQUAL_PARAMS
    v = data.variants(published(study(archs=archs, fractions=(1.0,), seeds=(0, 1)), tmp_path).tidy).set_index("arch")
    assert v.loc["maxout2-eqparams", ["matching", "reference"]].tolist() == ["params", "relu"]


def test_overfitting_verdict_follows_the_change_of_the_gap(run, tmp_path):
    v = found(run)
    assert v[("maxout2-eqparams", "gap-change-diff")].outcome is Outcome.HIGHER
    assert v[("maxout2-eqwidth", "gap-change-diff")].outcome is Outcome.UNDECIDED
    flat = {1.0: [0.01, 0.02, 0.03, 0.02, 0.01], 0.25: [0.01, 0.02, 0.03, 0.02, 0.01],
            0.1: [0.01, 0.02, 0.02, 0.01, 0.01]}
    less = published(study(gap={**GAP, "maxout2-eqparams": flat}), tmp_path)
    assert found(less)[("maxout2-eqparams", "gap-change-diff")].outcome is Outcome.LOWER
    assert values(run)["activation/overfit-more"] == "1"


def test_unconverged_runs_leave_the_gap_and_accuracy_comparisons(tmp_path):
    """A run at the cap in any of the four cells of a seed drops that seed from the gap's growth; one at the largest
    fraction drops it from the accuracy comparison too (a run stopped at the cap answers no accuracy question)."""
    run_ = published(study(unconverged={("relu", 1, 0.1), ("maxout2-eqwidth", 3, 1.0)}), tmp_path)
    v = found(run_)
    assert v[("maxout2-eqparams", "gap-change-diff")].n == 4 and v[("maxout2-eqwidth", "gap-change-diff")].n == 3
    assert v[("maxout2-eqwidth", "test-accuracy-diff")].n == 4  # seed 3 stopped at the cap at the largest fraction
    assert v[("maxout2-eqparams", "test-accuracy-diff")].n == 5  # relu's unconverged run is at the smaller fraction
    growth = data.gap_growth(run_.tidy).set_index("arch")
    assert growth.loc["relu", "seeds"] == 4  # the gap statistics leave the unconverged run out too
    numbers = values(run_)
    assert numbers["activation/torch-eager/maxout2-eqwidth-vs-relu/converged"] == "4"
    assert (numbers["activation/unconverged"], numbers["activation/any-unconverged"]) == ("2", "1")


def test_one_seed_gives_no_interval_and_no_verdict(tmp_path):
    one = published(study(seeds=(0,)), tmp_path)
    kinds = {suffix for _, suffix in found(one)}
    assert kinds == {"forward-ratio", "backward-ratio"}  # time only: no accuracy or gap verdict without intervals
    v = values(one)
    assert "activation/torch-eager/relu/test-accuracy-ci" not in v
    assert (v["activation/intervals"], v["activation/accuracy-compared"]) == ("0", "0")
    table = tables.accuracy_table(one)
    assert "has no interval" in table and r"$\pm$" not in table.split(r"\midrule", 1)[1]


def test_time_params_and_memory_against_relu(run):
    v = found(run)
    assert v[("maxout2-eqparams", "forward-ratio")].outcome in (Outcome.EQUIVALENT, Outcome.UNDECIDED)
    assert v[("maxout2-eqparams", "backward-ratio")].outcome is Outcome.SLOWER
    assert v[("maxout2-eqwidth", "forward-ratio")].outcome is Outcome.FASTER
    backward = v[("maxout2-eqparams", "backward-ratio")]
    assert backward.estimate == pytest.approx(2.0, abs=0.1) and backward.lo <= backward.estimate <= backward.hi
    assert backward.key == "activation/torch-eager/maxout2-eqparams-over-relu/backward-ratio"  # the old macro's key
    values_ = values(run)
    params = data.params(run.tidy)
    assert values_["activation/torch-eager/maxout2-eqwidth-over-relu/params-ratio"] == ratio(
        params["maxout2-eqwidth"] / params["relu"])
    assert values_["activation/torch-eager/maxout2-eqwidth-over-relu/saved-ratio"] == "2.00"
    assert "activation/tensorflow-eager/maxout2-eqwidth-over-relu/saved-ratio" not in values_  # TF has no hook
    assert values_["activation/width/saved-ratio"] == "2.00" and values_["activation/filters-saved"] == "1"
    counts = [values_[f"activation/backward-{w}"] for w in ("compared", "slower", "faster", "equivalent", "undecided")]
    assert counts[:3] == ["4", "2", "0"] and int(counts[3]) + int(counts[4]) == 2


def test_diverged_runs_are_counted_and_named(tmp_path):
    diverged = published(study(loss={("maxout2-eqwidth", 1): float("nan")}), tmp_path)
    v = values(diverged)
    assert (v["activation/diverged"], v["activation/runs"], v["activation/any-diverged"]) == ("3", "45", "1")
    assert r"\texttt{maxout2-eqwidth} in PyTorch eager (3 of 15 runs)" in tables.accuracy_table(diverged)
    assert values(published(study(fractions=(1.0,)), tmp_path))["activation/any-diverged"] == "0"


def test_tables_show_every_fraction_and_a_dash_where_memory_is_not_measured(run):
    accuracy = tables.accuracy_table(run)
    for header in ["10\\%", "25\\%", "100\\%", "change", "Test (\\%)"]:
        assert header in accuracy
    stats = data.seed_stats(run.tidy)
    row = stats[(stats.setup == "torch-eager") & (stats.arch == "maxout2-eqwidth")
                & (stats.train_fraction == 0.25)]
    assert pm(row.gap.iloc[0], row.gap_ci.iloc[0]) in accuracy
    cost = tables.cost_table(run)
    torch_rows, tf_rows = cost.split(r"\textit{TensorFlow eager}")
    assert tables.mib(SAVED["maxout2-eqwidth"]) in torch_rows
    assert all(line.rstrip(" \\").endswith("--") for line in tf_rows.splitlines() if line.startswith(r"\texttt"))
    assert "a dash in TensorFlow eager, which has no such hook" in cost
    assert "Peak" not in cost.split(r"\midrule")[0]  # no cell measured peak memory: no column, a note
    assert "recorded on GPUs only" in cost and "equal filters" in cost and "24, 48" in cost


def test_verdict_table_marks_what_the_intervals_decide(run):
    table = tables.verdict_table(run)
    v = found(run)
    assert tables.interval(v[("maxout2-eqparams", "test-accuracy-diff")]).startswith(r"\textbf")  # lower
    assert not tables.interval(v[("maxout2-eqwidth", "test-accuracy-diff")]).startswith(r"\textbf")
    assert not tables.interval(v[("maxout2-eqparams", "forward-ratio")]).startswith(r"\textbf")  # about as fast
    for k, x in v.items():
        assert tables.interval(x) in (tables.gap_table(run) if k[1].startswith("gap-diff-f") else table)
    assert table.count(r"\texttt{maxout2-eqwidth}") == 2  # one row per setup; ReLU is the reference, not a row
    params = data.params(run.tidy)
    assert ratio(params["maxout2-eqwidth"] / params["relu"]) in table


def test_figures_of_the_study(run, tmp_path):
    for figure in STUDY.figures:
        assert figure.draw(run, tmp_path / f"{figure.name}.pdf").read_bytes().startswith(b"%PDF")
    assert [f.name for f in STUDY.figures] == ["activation_time"]  # accuracy and gap: its tables, not figures
    other = study(fractions=(1.0,))
    for r in other:  # another study's cells only
        r["cell"]["study"] = "kernel"
    kernel_only = published(other, tmp_path)
    for figure in STUDY.figures:
        assert figure.draw(kernel_only, tmp_path / f"none_{figure.name}.pdf").exists()


def test_accuracy_values_ignore_smaller_fractions(run, tmp_path):
    whole = published(study(fractions=(1.0,)), tmp_path)
    keys = [k for k in values(whole) if re.search(r"/(test-accuracy|train-accuracy|gap)$", k)]
    assert keys and all(values(run)[k] == values(whole)[k] for k in keys)


def section_keys() -> set[str]:
    keys = set()
    for name in ("activation.tex", "appendix-activation.tex"):
        text = re.sub(r"(?m)%.*$", "", (SECTION / name).read_text())
        keys |= set(re.findall(r"\\(?:cb|ifcb)\{([^}]+)\}", text))
    return {k for k in keys if k.startswith("activation/")}  # run-wide values (overview/...) come from that study


def test_every_key_the_section_quotes_exists_with_or_without_the_study(run, tmp_path):
    keys = section_keys()
    assert {"activation/ran", "activation/accuracy-tally", "activation/width/backward-ratio"} <= keys
    other = study(fractions=(1.0,))
    for r in other:
        r["cell"]["study"] = "kernel"
    speed_only = [r for r in study(fractions=(1.0,)) if r["cell"]["task"] == "speed"
                  and r["cell"]["arch"]["name"] == "maxout2-eqparams"]  # the tiny pipeline's: no ReLU, no training
    cases = [run, *(published(records, tmp_path) for records in (other, speed_only, study(seeds=(0,))))]
    for case in cases:
        written = {"activation/ran": "1" if STUDY.ran(case) else "0"} | values(case)
        assert keys <= set(written), sorted(keys - set(written))
    assert STUDY.ran(run) and not STUDY.ran(published(other, tmp_path))
    assert values(published(speed_only, tmp_path))["activation/compared"] == "0"


def test_analyse_study_writes_its_outputs(run, tmp_path):
    assert STUDIES["activation"] is STUDY
    out = analyse_study(STUDY, run, tmp_path / "activation")
    assert "tab:activation-accuracy" in (out / "tables" / "activation_accuracy.tex").read_text()
    assert "tab:activation-cost" in (out / "tables" / "activation_cost.tex").read_text()
    assert "tab:activation-verdicts" in (out / "tables" / "activation_verdicts.tex").read_text()
    assert all((out / "figures" / f"{f.name}.pdf").exists() for f in STUDY.figures)
    macros = read_macros(out / "macros.tex")
    key = "activation/torch-eager/maxout2-eqparams-over-relu/backward-ratio"
    assert macros[f"{key}-word"] == "slower than" and float(macros[f"{key}-lo"]) <= float(macros[key])
    assert len(json.loads((out / "verdicts.json").read_text())) == len(verdicts(run))


def recorded_gap(arch, seed, fraction):
    """The gap a train record of study() holds: its train accuracy is cut at 100 %."""
    test = TEST[arch][seed] - (1 - fraction) / 2
    return min(test + GAP[arch][fraction][seed], 1.0) - test


def test_the_gap_at_each_fraction_is_paired_by_seed_per_variant(tmp_path):
    """Maxout's gap minus ReLU's, seed by seed, at every training fraction, decided at the one-point margin: at
    equal parameters 13-16 points larger at 10 %, identical at 100 %."""
    run = published(study(), tmp_path)
    mine = found(run)
    for arch in ("maxout2-eqparams", "maxout2-eqwidth"):
        for fraction in (0.1, 0.25, 1.0):
            v = mine[(arch, f"gap-diff-f{100 * fraction:g}")]
            assert v.n == len(SEEDS) and v.scale == "gap"
            assert v.estimate == pytest.approx(np.mean([recorded_gap(arch, s, fraction) - recorded_gap("relu", s, fraction)
                                                        for s in SEEDS]))
    assert mine[("maxout2-eqparams", "gap-diff-f10")].outcome is Outcome.HIGHER
    assert mine[("maxout2-eqparams", "gap-diff-f100")].outcome is Outcome.EQUIVALENT
    numbers = values(run)
    assert numbers["activation/gaps-compared"] == "6" and int(numbers["activation/gaps-more"]) >= 1
    table = tables.gap_table(run)
    assert all(f"{p}\\%" in table for p in ("10", "25", "100")) and r"\texttt{maxout2-eqwidth}" in table


def test_equal_parameters_are_judged_on_the_trained_network(tmp_path):
    """The widths were chosen on the trained task; the timed network (three input channels, not one) has other
    counts. maxout4 at 96 filters: 0.2 % off ReLU's parameters as trained, 2.2 % as timed: it matches by parameters
    (it read as 'other' when the timed count decided, and dropped out of every comparison)."""
    archs = {"relu": (48, 1), "maxout4-eqparams": (96, 4), "maxout2-eqwidth": (96, 2)}
    df = published(study(archs=archs, fractions=(1.0,), seeds=(0, 1)), tmp_path).tidy
    counts = data.network_params(df)
    timed, trained = (counts.loc["maxout4-eqparams", c] / counts.loc["relu", c] - 1 for c in ("speed", "digits"))
    assert timed > data.EQUAL_PARAMS >= abs(trained)
    v = data.variants(df).set_index("arch")
    assert v.loc["maxout4-eqparams", ["matching", "reference"]].tolist() == ["params", "relu"]
    assert "maxout4-eqparams" in set(data.compared(df)["arch"])


def test_accuracy_table_takes_the_converged_seeds_and_says_so(tmp_path):
    """A seed stopped at the cap leaves the table's mean as it leaves the comparison: its Seeds cell says 4 of 5."""
    run_ = published(study(unconverged={("maxout2-eqwidth", 3, 1.0)}, fractions=(1.0,)), tmp_path)
    stats = data.seed_stats(run_.tidy).set_index("arch")
    kept = [TEST["maxout2-eqwidth"][s] for s in SEEDS if s != 3]
    assert (stats.loc["maxout2-eqwidth", "seeds"], stats.loc["maxout2-eqwidth", "trained"]) == (4, 5)
    assert stats.loc["maxout2-eqwidth", "test"] == pytest.approx(np.mean(kept))
    table = tables.accuracy_table(run_)
    row = next(line for line in table.splitlines() if line.startswith(r"\texttt{maxout2-eqwidth}"))
    assert "& 4 of 5 &" in row and pm(np.mean(kept), stats.loc["maxout2-eqwidth", "test_ci"]) in row
    assert "whose run converged" in table and values(run_)["activation/seeds"] == "5"  # trained per variant


def test_a_zero_half_width_is_explained(tmp_path):
    same = {**TEST, "relu": [0.95, 0.95, 0.97, 0.955, 0.965]}
    table = tables.accuracy_table(published(study(test=same, seeds=(0, 1), fractions=(1.0,)), tmp_path))
    assert r"95.0\,$\pm$\,0.0" in table and "A half-width of 0.0" in table
    assert "A half-width of 0.0" not in tables.accuracy_table(published(study(fractions=(1.0,)), tmp_path))


def test_interval_ends_at_the_margin_show_their_side():
    """1.05 [1.05, ...] cannot say whether the interval clears the margin of 1.05: its end gets the digits that do."""
    from convbench.analysis.formatting import beside
    from convbench.analysis.stats import Kind, Paired, paired_verdicts, time_verdict
    slower = time_verdict("k", "a", "b", "backward time", 1.42, 1.0512, 1.91, Kind.LAUNCHES)
    undecided = time_verdict("k", "a", "b", "backward time", 1.36, 1.0488, 1.77, Kind.LAUNCHES)
    assert (slower.outcome, undecided.outcome) == (Outcome.SLOWER, Outcome.UNDECIDED)
    assert tables.interval(slower) == r"\textbf{1.42 [1.051, 1.91]}"
    assert tables.interval(undecided) == "1.36 [1.049, 1.77]"
    assert beside(0.9521, (1.05, 1 / 1.05)) == "0.9521" and beside(0.80, (1.05, 1 / 1.05)) == "0.80"
    points = paired_verdicts([Paired("k", "a", "b", "test accuracy", (0.0101, 0.0103, 0.0102))])[0]
    assert points.lo < 0.01 and points.outcome is Outcome.UNDECIDED  # 0.995 points: "1.0" would hide that
    assert tables.interval(points).split("[")[1].startswith("0.995,")
    assert beside(0.0098, (0.01, -0.01), 1, 100) == "0.98" and beside(-0.0102, (0.01, -0.01), 1, 100) == "-1.02"


def test_captions_name_the_holm_family_actually_used(run):
    """Table 3's family: the accuracy and gap-growth comparisons (Table 10's gaps per fraction are a family of
    their own), each counted; without a second fraction there is no growth, and the caption says accuracy only."""
    table, gaps = tables.verdict_table(run), tables.gap_table(run)
    assert "over the study's 4 comparisons of test accuracy (2) and gap growth (2)" in table
    assert "over this table's 6 comparisons (a family of their own" in gaps
    assert values(run)["activation/holm-family"] in table


def test_one_fraction_names_an_accuracy_family(tmp_path):
    one = published(study(fractions=(1.0,)), tmp_path)
    assert "over the study's 2 test-accuracy comparisons, in brackets" in tables.verdict_table(one)
    # a comparison on one seed pair counts in Holm's m but shows no interval: the caption says so
    short = published(study(fractions=(1.0,), seeds=(0, 1), unconverged={("maxout2-eqwidth", 1, 1.0)}), tmp_path)
    assert ("over the study's 2 test-accuracy comparisons (1 of them on one seed pair: counted, without an "
            "interval)") in tables.verdict_table(short)


def test_speed_counts_and_the_conclusion_follow_the_outcomes(run, tmp_path):
    v = values(run)
    for phase in ("forward", "backward"):
        assert " in 0" not in v[f"activation/{phase}-tally"] and v[f"activation/{phase}-tally"] != "none"
    assert v["activation/backward-tally"].startswith("slower in 2")
    assert v["activation/accuracy-decided"] == "1"  # maxout2-eqparams lower than ReLU
    close = {**TEST, "maxout2-eqparams": [x + 0.001 for x in TEST["relu"]][:3] + [0.94, 0.99]}
    assert values(published(study(test=close, fractions=(1.0,)), tmp_path))["activation/accuracy-decided"] == "0"

"""The kernel study: per-cell values, single kernel against stacked convolutions (verdicts), frameworks in eager mode,
its figures and tables. Fixture records go through write_tidy and read_run, as in the pipeline.

Train cells as the measuring side writes them: five replicate seeds in PyTorch (cell.settings.role 'replicate'),
one repeat seed in TensorFlow ('repeat'), training.converged and stopped_epoch; seeds are shared across archs, so
a seed's shift moves every arch's accuracy alike and only paired differences see through it."""
import json

import numpy as np
import pytest
from builders.kernel import (
    ARCHS,
    DRIFT,
    PAIRS,
    SEEDS,
    kernel_records,
    make_record,
    median,
    published,
    seed_accuracy,
    verdicts,
)

from convbench import spec
from convbench.analysis import analyse_study, stats
from convbench.analysis.formatting import ms, percent, setup_label, verdict_word
from convbench.analysis.kernel import STUDY, tables, values
from convbench.analysis.latex import read_macros
from convbench.analysis.overview import STUDY as OVERVIEW
from convbench.analysis.overview import runs
from convbench.analysis.overview import tables as overview_tables
from convbench.analysis.stats import Outcome


@pytest.fixture
def run(tmp_path):
    return published(tmp_path, kernel_records())


def test_pairs_are_a_single_kernel_against_the_stack_of_its_receptive_field(run):
    assert set(values.stack_pairs(run.study("kernel"))) == PAIRS
    found = values.comparisons(run)
    setups = ("torch-eager", "tensorflow-eager")
    assert {(p.slug, p.a, p.b) for p in found} == {(s, a, b) for s in setups for a, b in PAIRS}


def test_time_ratios_are_verdicts_on_the_record_medians(run):
    v = verdicts(run)["kernel/torch-eager/k5-over-k3-stack2/backward-ratio"]
    assert v.estimate == pytest.approx(median(run, "k5") / median(run, "k3-stack2"))
    assert v.lo < v.estimate < v.hi and v.unit == "ratio"
    assert v.outcome is Outcome.FASTER  # FLOP-proportional times: one 5x5 does fewer FLOPs than two 3x3
    numbers = values.values(run)
    assert float(numbers["kernel/tensorflow-eager/k7/step-ms"]) == pytest.approx(
        median(run, "k7", "step", "tensorflow") * 1e3, rel=0.01)
    params = {a: run.tidy[run.tidy.arch == a].params.iloc[0] for a in ("k5", "k3-stack2")}
    assert float(numbers["kernel/torch-eager/k5-over-k3-stack2/params-ratio"]) == pytest.approx(
        params["k5"] / params["k3-stack2"], abs=0.005)
    # the median over the replicate seeds only: the repeat seed in TensorFlow is no replicate
    assert numbers["kernel/torch-eager/k5/test-accuracy"] == percent(np.median([seed_accuracy("k5", s) for s in SEEDS]))
    assert numbers["kernel/tensorflow-eager/k5/test-accuracy"] == percent(seed_accuracy("k5", 0))  # its one seed


def test_directions_follow_the_data(tmp_path):
    a = published(tmp_path, kernel_records(accuracy={"k5": 0.94, "k7": 0.94}))  # 2.6 and 2.9 points below the stacks
    b = published(tmp_path, kernel_records(slowdown={"k5": 3.0, "k7": 3.0}, accuracy={"k5": 0.975, "k7": 0.975,
                                                                                  "k3-stack2": 0.94, "k3-stack3": 0.94}))
    key = "kernel/torch-eager/k5-over-k3-stack2/backward-ratio"
    assert verdicts(a)[key].outcome is Outcome.FASTER and verdicts(b)[key].outcome is Outcome.SLOWER
    assert verdicts(a)[key].estimate < 1 < verdicts(b)[key].estimate
    assert verdicts(a)["kernel/stack/backward-ratio"].outcome is Outcome.FASTER
    assert verdicts(b)["kernel/stack/backward-ratio"].outcome is Outcome.SLOWER
    assert verdicts(a)["kernel/stack/backward-ratio"].n == 4
    va, vb = values.values(a), values.values(b)
    # two pairs in the replicate framework (PyTorch); the repeat in TensorFlow makes no comparison
    assert (va["kernel/stack/single-higher"], va["kernel/stack/single-lower"]) == ("0", "2")
    assert (vb["kernel/stack/single-higher"], vb["kernel/stack/single-lower"]) == ("2", "0")
    assert va["kernel/stack/accuracy-pairs"] == "2" and va["kernel/stack/timed"] == "1"
    acc = "kernel/torch-eager/k5-vs-k3-stack2/test-accuracy-diff"
    assert verdicts(a)[acc].outcome is Outcome.LOWER and verdicts(b)[acc].outcome is Outcome.HIGHER


def test_a_difference_inside_the_margin_is_equivalent(run):
    """k5 0.4 points below its stack on every seed (a tight interval inside the one-point margin): equivalent, not
    lower; the count the text quotes follows."""
    v = verdicts(run)["kernel/torch-eager/k5-vs-k3-stack2/test-accuracy-diff"]
    assert -0.01 < v.lo < v.hi < 0 and v.outcome is Outcome.EQUIVALENT and v.margin == 0.01
    assert values.values(run)["kernel/stack/equivalent"] >= "1"


def test_pairs_that_disagree_are_mixed(tmp_path):
    run = published(tmp_path, kernel_records(slowdown={"k5": 3.0}))  # k5 slower than its stack, k7 faster
    v = verdicts(run)["kernel/stack/backward-ratio"]
    assert v.outcome is Outcome.UNDECIDED and v.lo < 1 < v.hi


def test_frameworks_in_eager_mode(run):
    """Over every study's timed networks: a run-wide comparison, the overview study's."""
    v = {v.key: v for v in runs.framework_verdicts(run)}["overview/frameworks/eager/backward-ratio"]
    assert (v.subject, v.reference, v.n) == ("tensorflow-eager", "torch-eager", len(ARCHS))
    assert v.estimate == pytest.approx(1.5, rel=0.05) and v.outcome is Outcome.SLOWER
    numbers = runs.values(run)
    assert numbers["overview/frameworks/eager"] == "1"
    assert numbers["overview/frameworks/eager/backward-slow"] == setup_label("tensorflow", "eager")
    assert float(numbers["overview/frameworks/tensorflow-eager-over-torch-eager/backward-ratio"]) == \
        pytest.approx(1.5, rel=0.05)


def test_new_engines_flow_through(tmp_path):
    records = [make_record("speed", "torch", arch, slowdown=slowdown, engine=engine)
               for engine, slowdown in [("eager", 1.0), ("compile", 0.5)] for arch in ("k3", "k5", "k3-stack2")]
    run = published(tmp_path, records)
    assert "kernel/torch-compile/k5-over-k3-stack2/backward-ratio" in verdicts(run)
    numbers = runs.values(run)
    assert float(numbers["overview/frameworks/torch-compile-over-torch-eager/backward-ratio"]) == \
        pytest.approx(0.5, abs=0.05)
    assert numbers["overview/frameworks/eager"] == "0"  # one eager setup: nothing to compare
    speed = overview_tables.speed(run)
    assert "PyTorch compile" in speed and "PyTorch eager" in speed


def test_analyse_writes_figures_tables_and_macros(run, tmp_path):
    out = analyse_study(STUDY, run, tmp_path / "kernel")
    for figure in STUDY.figures:
        assert (out / "figures" / f"{figure.name}.pdf").read_bytes().startswith(b"%PDF")
    cells = analyse_study(OVERVIEW, run, tmp_path / "overview")  # every study's cells, one row each
    speed = (cells / "tables" / "speed.tex").read_text()
    rows = run.tidy[(run.tidy.arch == "k5") & (run.tidy.phase == "backward") & (run.tidy.framework == "torch")]
    assert ms(rows.value.iloc[0], rows.iqr.iloc[0]) in speed and "k3-stack2" in speed and r"\bottomrule" in speed
    assert percent(np.median([seed_accuracy("k5", s) for s in SEEDS])) in (cells / "tables" / "accuracy.tex").read_text()
    assert r"\texttt{k3-stack3}" in (out / "tables" / "kernel_pairs.tex").read_text()
    macros = read_macros(out / "macros.tex")
    v = verdicts(run)["kernel/torch-eager/k5-over-k3-stack2/backward-ratio"]
    assert macros["kernel/ran"] == "1" and macros[v.key] == f"{v.estimate:.2f}" and macros[f"{v.key}-word"] == verdict_word(v)
    assert macros[f"{v.key}-lo"] == f"{v.lo:.2f}" and macros[f"{v.key}-hi"] == f"{v.hi:.2f}"
    assert json.loads((out / "verdicts.json").read_text())


def test_a_run_without_kernel_pairs_still_analyses(tmp_path):
    """One network, no training: placeholders instead of figures, flags at 0 for the text's fallbacks."""
    run = published(tmp_path, [make_record("speed", "torch", "k5")])
    out = analyse_study(STUDY, run, tmp_path / "kernel")
    assert all((out / "figures" / f"{f.name}.pdf").read_bytes().startswith(b"%PDF") for f in STUDY.figures)
    macros = read_macros(out / "macros.tex")
    assert macros["kernel/ran"] == "1"
    assert (macros["kernel/stack/timed"], macros["kernel/stack/trained"]) == ("0", "0")
    assert "No single kernel" in (out / "tables" / "kernel_pairs.tex").read_text()
    cells = analyse_study(OVERVIEW, run, tmp_path / "overview")
    assert read_macros(cells / "macros.tex")["overview/frameworks/eager"] == "0"
    assert "no training cells" in (cells / "tables" / "accuracy.tex").read_text()


def test_a_run_where_every_kernel_cell_failed(tmp_path):
    records = []
    for arch in ["k3", "k5"]:
        r = make_record("speed", "torch", arch)
        r.update(status="failed", error="RuntimeError: boom")
        del r["timings"]
        records.append(r)
    run = published(tmp_path, records)
    assert not STUDY.ran(run) and values.verdicts(run) == []
    out = analyse_study(STUDY, run, tmp_path / "kernel")
    assert read_macros(out / "macros.tex")["kernel/ran"] == "0"
    cells = analyse_study(OVERVIEW, run, tmp_path / "overview")  # every study's cells: none timed
    assert "no timed cells" in (cells / "tables" / "speed.tex").read_text()


# ---- paired statistics ------------------------------------------------------------------------------------

def test_paired_interval_by_hand():
    """Differences -0.2, +0.7, +0.7 points: mean 0.4, sd sqrt(0.27), t(0.975, 2) = 4.303 standard errors."""
    mean, lo, hi, n, p = stats.paired_t([-0.002, 0.007, 0.007])
    half = 4.302652729911275 * np.sqrt(0.27) / np.sqrt(3) / 100
    assert (mean, n) == (pytest.approx(0.004), 3)
    assert (lo, hi) == (pytest.approx(0.004 - half), pytest.approx(0.004 + half))
    assert 0.1 < p < 0.5  # t = 0.4 / 0.3
    [v] = stats.paired_verdicts([stats.Paired("x", "a", "b", "test accuracy", (-0.002, 0.007, 0.007))])
    assert v.outcome is Outcome.UNDECIDED and v.level == pytest.approx(0.95) and v.unit == "points"
    [v] = stats.paired_verdicts([stats.Paired("x", "a", "b", "test accuracy", (0.006, 0.007, 0.008))])
    assert v.outcome is Outcome.EQUIVALENT and 0 < v.lo < v.hi < 0.01  # excludes zero, inside the one-point margin
    [v] = stats.paired_verdicts([stats.Paired("x", "a", "b", "test accuracy", (0.016, 0.017, 0.018))])
    assert v.outcome is Outcome.HIGHER and v.lo > 0.01


def test_pairing_removes_the_seed_to_seed_spread(run):
    """Seeds move every arch alike: unpaired intervals of k5 and k3-stack2 overlap, the paired one excludes zero and
    lies inside the one-point margin: equivalent."""
    v = verdicts(run)["kernel/torch-eager/k5-vs-k3-stack2/test-accuracy-diff"]
    diffs = [seed_accuracy("k5", s) - seed_accuracy("k3-stack2", s) for s in SEEDS]
    assert v.estimate == pytest.approx(np.mean(diffs)) and v.n == len(SEEDS)
    assert -0.01 < v.lo < v.hi < 0 and v.outcome is Outcome.EQUIVALENT
    means = {a: stats.t_interval([seed_accuracy(a, s) for s in SEEDS]) for a in ("k5", "k3-stack2")}
    assert abs(means["k5"][0] - means["k3-stack2"][0]) < means["k5"][1] + means["k3-stack2"][1]  # overlap


def test_holm_levels():
    """m = 3, alpha = 0.05: the smallest p-value is judged at 0.05/3, the next at 0.05/2, the last at 0.05; once one
    is not rejected, the rest keep its level."""
    levels = stats.holm_levels([0.04, 0.001, 0.02])
    assert levels == pytest.approx([0.95, 1 - 0.05 / 3, 0.975])
    levels = stats.holm_levels([0.04, 0.001, 0.03])  # 0.03 > 0.025: stop there
    assert levels == pytest.approx([0.975, 1 - 0.05 / 3, 0.975])
    assert stats.holm_levels([float("nan"), 0.001]) == pytest.approx([0.95, 0.975])


def test_holm_widens_a_family_and_the_word_follows_the_interval():
    """Alone a comparison is decided; in a family of four undecided ones its interval widens to hold zero."""
    d = (0.024, 0.036, 0.066, 0.018, 0.042)  # points beyond the one-point margin
    [alone] = stats.paired_verdicts([stats.Paired("a", "x", "y", "q", d)])
    noise = [stats.Paired(f"n{i}", "x", "y", "q", (0.01, -0.01, 0.002, -0.003, 0.001)) for i in range(4)]
    family = {v.key: v for v in stats.paired_verdicts([stats.Paired("a", "x", "y", "q", d), *noise])}
    _, _, _, _, p = stats.paired_t(d)
    assert alone.outcome is Outcome.HIGHER and alone.lo > 0.01
    assert 0.05 / 5 < p < 0.05  # rejected alone, not at 0.05/5
    assert family["a"].level == pytest.approx(0.99) and family["a"].lo < 0 and family["a"].outcome is Outcome.UNDECIDED


def test_prediction_interval_by_hand():
    values_ = [0.95, 0.96, 0.97]
    mean, lo, hi, n = stats.prediction_interval(values_)
    half = 4.302652729911275 * 0.01 * np.sqrt(1 + 1 / 3)
    assert (mean, lo, hi, n) == (pytest.approx(0.96), pytest.approx(0.96 - half), pytest.approx(0.96 + half), 3)
    assert np.isnan(stats.prediction_interval([0.9])[1])


def test_unconverged_runs_leave_the_accuracy_and_gap_comparisons(tmp_path):
    """A run stopped at the cap answers no accuracy question: its seed leaves both paired comparisons."""
    run = published(tmp_path, kernel_records(unconverged={("k5", 1), ("k3-stack2", 3)}))
    found = verdicts(run)
    acc, gap = (found[f"kernel/torch-eager/k5-vs-k3-stack2/{q}"] for q in ("test-accuracy-diff", "gap-diff"))
    assert acc.n == 3 and gap.n == 3
    assert acc.estimate == pytest.approx(np.mean([seed_accuracy("k5", s) - seed_accuracy("k3-stack2", s)
                                                  for s in (0, 2, 4)]))
    train = {(a, s): seed_accuracy(a, s) + spec_params(a) / 2e6 for a in ("k5", "k3-stack2") for s in SEEDS}
    gaps = [min(1, train[("k5", s)]) - seed_accuracy("k5", s) - min(1, train[("k3-stack2", s)])
            + seed_accuracy("k3-stack2", s) for s in (0, 2, 4)]
    assert gap.estimate == pytest.approx(np.mean(gaps))
    numbers = runs.values(run)
    assert numbers["overview/convergence/runs"] == str(len(ARCHS) * len(SEEDS))
    assert (numbers["overview/convergence/converged"], numbers["overview/convergence/unconverged"]) == (
        str(len(ARCHS) * len(SEEDS) - 2), "2")
    table = overview_tables.unconverged(run)
    assert table.count(r"\\") - table.count(r"\\ \midrule") >= 3 and "k3-stack2" in table  # header + 2 rows
    assert "k7" not in table


def test_a_run_levelled_off_at_chance_counts_as_unconverged(tmp_path):
    """A record that says converged but ended at chance (written before the outcome existed), and one that says
    'chance': neither counts as converged, both leave the accuracy comparison, and the table names the outcome."""
    records = kernel_records()
    for record in records:
        if record["cell"]["task"] == "train" and record["cell"]["settings"].get("role") == "replicate" and (
                record["cell"]["arch"]["name"], record["cell"]["seed"]) in {("k5", 1), ("k3-stack2", 3)}:
            record["training"]["epochs"][-1] |= {"train_accuracy": 0.11, "test_accuracy": 0.1}
            record["training"] |= {"converged": True, "stopped_epoch": 3, "criterion": {"patience": 2}}
            if record["cell"]["seed"] == 3:
                record["training"] |= {"converged": False, "outcome": "chance"}
    run = published(tmp_path, records)
    acc = verdicts(run)["kernel/torch-eager/k5-vs-k3-stack2/test-accuracy-diff"]
    assert acc.n == 3
    numbers = runs.values(run)
    assert (numbers["overview/convergence/converged"], numbers["overview/convergence/unconverged"],
            numbers["overview/convergence/at-chance"], numbers["overview/convergence/any-at-chance"]) == (
        str(len(ARCHS) * len(SEEDS) - 2), "2", "2", "1")
    table = overview_tables.unconverged(run)
    assert table.count("chance") >= 2 + table.count("chance", 0, table.index(r"\toprule"))


def spec_params(arch, in_channels=1):
    kernel, depth = ARCHS[arch]
    archd = {"blocks": [{"width": w, "kernel": kernel, "depth": depth} for w in (32, 64)]}
    return spec.param_count(spec.ArchSpec.from_dict(arch, archd, in_channels, 10))


def test_the_repeat_is_a_cross_framework_check_not_a_replicate(run):
    """The TensorFlow seed is compared epoch by epoch with PyTorch's on the same seed: the largest difference."""
    numbers = runs.values(run)
    assert numbers["overview/repeat/ran"] == "1" and numbers["overview/repeat/networks"] == str(len(ARCHS))
    assert numbers["overview/repeat/max-accuracy-diff"] == percent(DRIFT)
    assert numbers["overview/repeat/median-final-diff"] == percent(0.0)  # the drift is at epoch 2 of 3, not the last
    assert float(numbers["overview/repeat/max-loss-diff"]) == 0
    assert values.values(run)["kernel/stack/seeds"] == str(len(SEEDS))  # five pairs, not six


def test_extremes_and_parameter_ratios_in_the_table(run):
    found = verdicts(run)
    low, high = found["kernel/stack/accuracy-lowest"], found["kernel/stack/accuracy-highest"]
    pairs = [found[f"kernel/torch-eager/{a}-vs-{b}/test-accuracy-diff"] for a, b in PAIRS]
    assert low.estimate == min(v.estimate for v in pairs) and high.estimate == max(v.estimate for v in pairs)
    table = tables.pairs(run)
    timed, trained = (spec_params("k5", c) / spec_params("k3-stack2", c) for c in (3, 1))
    assert f"{timed:.2f}" != f"{trained:.2f}"  # the timed cells have 3 input channels, the trained ones 1
    row = next(line for line in table.splitlines() if line.startswith(r"\texttt{k5}"))
    assert f"& {timed:.2f} & {trained:.2f} &" in row  # both, each under its header
    numbers = values.values(run)
    # the accuracy sentences quote the trained networks' ratio, the speed sentence the timed ones'
    assert numbers["kernel/stack/stack-params-max"] == f"{max(spec_params(b) / spec_params(a) for a, b in PAIRS):.2f}"
    assert numbers["kernel/torch-eager/k5-over-k3-stack2/trained-params-ratio"] == f"{trained:.2f}"
    # the conclusion says which way VGG's premise went, not 'only where the ratio is below one'; a stack within 2 % of
    # its single kernel (an equal-parameter pair) matches it rather than having fewer weights
    assert values.fewer_weights([0.56, 0.72]) == "all 2 stacks had fewer weights than the single kernel, as VGG's premise has it"
    assert values.fewer_weights([0.56, 0.99, 1.21]) == (
        "of the 3 stacks, 1 had fewer weights than their single kernel, as VGG has it; 1 matched their single kernel's "
        r"parameters within 2\,\%; 1 had more weights than their single kernel, against VGG's premise")
    assert values.fewer_weights([1.21]) == "the stack had more weights than its single kernel, against VGG's premise"
    ratios = [spec_params(b) / spec_params(a) for a, b in PAIRS]
    assert numbers["kernel/stack/fewer-weights"] == values.fewer_weights(ratios)
    assert numbers["kernel/stack/params-ratio"] == "--".join(
        sorted({f"{spec_params(a, 3) / spec_params(b, 3):.2f}" for a, b in PAIRS}))


def test_step_time_is_said_per_setup_where_a_pooled_verdict_hides_one():
    """PyTorch decided faster (0.71-0.74), TensorFlow undecided (0.47-1.24): pooled over setups the interval is
    undecided, so the text names each setup with its own outcome and interval."""
    from convbench.analysis.stats import Kind, time_verdict

    pairs = [values.Pair("torch-eager", "PyTorch eager", "k5", "k3-stack2", {"step": (0.73, 0.71, 0.74, Kind.LAUNCHES)}),
             values.Pair("tensorflow-eager", "TensorFlow eager", "k5", "k3-stack2",
                         {"step": (0.77, 0.47, 1.24, Kind.LAUNCHES)})]
    assert {v.outcome for v in values.stack_verdicts(pairs)} == {Outcome.UNDECIDED}
    found = values.pair_verdicts(pairs)
    assert values.phase_tally(pairs, found, "step") == (
        r"faster in PyTorch eager (0.73$\times$, 0.71--0.74$\times$) and undecided in TensorFlow eager "
        r"(0.77$\times$, 0.47--1.24$\times$)")
    assert values.phase_tally(pairs, found, "backward") == "--"
    # several pairs in a setup: counts of the outcomes that occurred, never 'in 0'
    more = pairs + [values.Pair("torch-eager", "PyTorch eager", "k7", "k3-stack3", {"step": (0.8, 0.75, 0.85, Kind.LAUNCHES)})]
    text = values.phase_tally(more, values.pair_verdicts(more), "step")
    assert text == "faster in 2 and undecided in 1 of 3 comparisons" and " in 0" not in text
    # an end at the margin prints the digits that show its side: 0.9521 < 1/1.05 = 0.95238
    edge = [values.Pair("torch-eager", "PyTorch eager", "k5", "k3-stack2", {"step": (0.72, 0.55, 0.9521, Kind.LAUNCHES)})]
    assert "0.55--0.9521" in values.phase_tally(edge, values.pair_verdicts(edge), "step")
    assert time_verdict("k", "a", "b", "step", 0.72, 0.55, 0.9521, Kind.LAUNCHES).outcome is Outcome.FASTER


def test_paired_interval_ends_show_their_side_of_the_margin():
    from convbench.analysis.stats import Paired, paired_verdicts
    v = paired_verdicts([Paired("k", "a", "b", "test accuracy", (0.0101, 0.0103, 0.0102))])[0]
    assert v.lo < 0.01 and tables.paired(v).startswith("1.0 (0.995, ")  # "1.0" would not say it reaches inside


def test_the_holm_family_counts_comparisons_on_one_seed_pair():
    """Holm's m holds a comparison on one seed pair (no interval of its own): the text and caption count it."""
    pairs = [values.Pair("torch-eager", "PyTorch eager", "k5", "k3-stack2", test_diffs=(0.01, 0.02, 0.0),
                         gap_diffs=(0.01,)), values.Pair("torch-eager", "PyTorch eager", "k7", "k3-stack3",
                                                         test_diffs=(0.01, 0.03))]
    assert values.family_size(pairs) == 3 and len(values.accuracy_verdicts(pairs)) == 2
    assert values.pair_values(pairs, values.accuracy_verdicts(pairs))["kernel/stack/family"] == "3"


def test_seeds_per_network_come_from_the_data(run):
    from convbench.analysis.formatting import seeds_phrase
    assert values.values(run)["kernel/seeds-text"] == "five seeds" == seeds_phrase([5, 5])
    assert seeds_phrase([1, 3, 3]) == "1--3 seeds" and seeds_phrase([1]) == "one seed"


def test_the_minimum_detectable_effect_is_each_paired_intervals_half_width(run):
    """At the run's seeds: t at the verdict's Holm level times the per-seed differences' standard error, the range
    over the accuracy comparisons in points, as the text quotes it."""
    from scipy import stats as scipy_stats

    found = [v for v in values.verdicts(run) if v.key.endswith("/test-accuracy-diff") and "/stack/" not in v.key]
    halves = []
    for v in found:
        a, b = v.key.split("/")[2].split("-vs-")
        d = np.array([seed_accuracy(a, s) - seed_accuracy(b, s) for s in SEEDS])
        half = scipy_stats.t.ppf((1 + v.level) / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
        assert v.detectable == pytest.approx(half)
        halves.append(half)
    numbers = values.values(run)
    assert numbers["kernel/stack/detectable"] == f"{percent(min(halves))}--{percent(max(halves))}"
    assert (numbers["kernel/stack/detectable-seeds"], numbers["kernel/stack/detectable-any"]) == (str(len(SEEDS)), "1")

"""The engines and layers studies: the claim's verdicts with bootstrap intervals, roofline, estimated backward split,
layer-wise and fairness tables, figures and values.

Fixture records follow the measuring side's format: engines-study speed cells with engine info, phase method, step
FLOPs and bytes, the process's ceilings and noisy flags; layer-wise cells (one convolution each); a failed XLA cell.
They go through write_tidy and read_run, as the pipeline's do.
"""
import json

import numpy as np
import pytest
from builders.engines import (
    ARCHS,
    BACKWARD,
    ENGINES,
    NOISY,
    engine_record,
    engine_records,
    layer_shapes,
    published,
)

from convbench.analysis import analyse_study, query
from convbench.analysis.engines import STUDY as ENGINES_STUDY
from convbench.analysis.engines import claim, fairness, values
from convbench.analysis.engines.cells import engine_phases
from convbench.analysis.formatting import ms, percent, ratio, sig3, verdict_word
from convbench.analysis.latex import DAGGER, read_macros
from convbench.analysis.layers import STUDY as LAYERS_STUDY
from convbench.analysis.layers.tables import layers_table
from convbench.analysis.layers.values import layer_values
from convbench.analysis.stats import Kind, Outcome, Verdict, bootstrap_ratio, decide_several


@pytest.fixture(scope="module")
def records():
    return engine_records()


@pytest.fixture(scope="module")
def run(tmp_path_factory, records):
    return published(tmp_path_factory.mktemp("engines"), records)


def run_of(tmp_path, backward=None, layers=True):
    return published(tmp_path, engine_records(backward, layers))


def verdicts_by_key(run):
    return {v.key: v for v in claim.claim_verdicts(run)}


def test_bootstrap_interval_holds_the_ratio_and_narrows_with_more_samples():
    rng = np.random.default_rng(1)
    widths = []
    for n in (15, 400):
        a, b = 0.03 * rng.lognormal(0, 0.1, n), 0.01 * rng.lognormal(0, 0.1, n)
        r, lo, hi = bootstrap_ratio(a, b)
        assert lo <= r <= hi and r == pytest.approx(np.median(a) / np.median(b))
        assert 2.5 < r < 3.5
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2
    assert bootstrap_ratio(a, b) == bootstrap_ratio(a, b)  # fixed seed: reproducible


def test_claim_verdicts_hold_for_a_threefold_difference_and_not_for_equal_times(tmp_path):
    equal = {s: 1.0 for s in BACKWARD}
    run = run_of(tmp_path / "slow", equal | {"torch-eager": 3.0}, layers=False)
    verdicts = verdicts_by_key(run)
    eager = [v for v in verdicts.values() if v.subject == "torch-eager" and v.reference == "tensorflow-eager"]
    assert len(eager) == 3 and all(v.outcome is Outcome.AT_LEAST and v.lo >= 2 and 2.5 < v.estimate < 3.5 for v in eager)
    k5 = verdicts["engines/claim/torch-eager-over-tensorflow-eager/k5/ratio"]
    assert k5.lo <= k5.estimate <= k5.hi and k5.unit == "ratio" and k5.n == 60
    v = claim.claim_values(run)
    assert v["engines/claim/holds-any"] == "1" and int(v["engines/claim/first-slower"]) >= 3
    assert v["engines/claim/first-faster"] == "0"
    # a side the claim held for in no pair is left out ('in 0 TensorFlow's' was a seam)
    assert v["engines/claim/sides"] == (f"in {v['engines/claim/first-slower']} of them TensorFlow's backward pass is "
                                        "several times faster")
    assert " 0" not in v["engines/claim/others"]
    ok = list(verdicts.values())
    assert v["engines/claim/pairs"] == str(len(ok)) == "24"  # 27 pairs, three with the failed XLA cell
    assert v["engines/claim/failed"] == "3" and v["engines/claim/any-failed"] == "1"
    assert v["engines/claim/ratio-max"] == ratio(max(x.estimate for x in ok))
    # the abstract's range says which networks and batch it covers (a batch-64 range read as every batch's)
    batches = sorted({int(b) for b in run.tidy[run.tidy.study == "engines"].batch_size.dropna()})
    assert v["engines/claim/scope"].startswith("on ") and f"at batch {batches[0]}" in v["engines/claim/scope"]
    assert r"\texttt{k5}" in v["engines/claim/scope"] and "--" in v["engines/claim/ratio-span"]

    run = run_of(tmp_path / "equal", equal, layers=False)
    assert not any(x.outcome is Outcome.AT_LEAST for x in claim.claim_verdicts(run))
    assert claim.claim_values(run)["engines/claim/holds-any"] == "0"

    run = run_of(tmp_path / "fast", equal | {"torch-compile": 0.3}, layers=False)
    compiled = [x for x in claim.claim_verdicts(run) if x.subject == "torch-compile"]
    assert compiled and all(x.outcome is Outcome.AT_LEAST and x.hi <= 0.5 for x in compiled)
    assert claim.claim_values(run)["engines/claim/first-faster"] == str(len(compiled))


def test_the_claim_has_three_outcomes_against_its_factor():
    assert decide_several(2.0, 3.0) is Outcome.AT_LEAST and decide_several(0.3, 0.5) is Outcome.AT_LEAST
    assert decide_several(1.9, 3.0) is Outcome.UNDECIDED and decide_several(0.3, 0.51) is Outcome.UNDECIDED
    assert decide_several(0.9, 1.1) is Outcome.LESS_THAN and decide_several(0.51, 1.99) is Outcome.LESS_THAN


def test_failed_cell_shows_failed_in_claim_and_fairness(run):
    c = claim.claims(run)
    assert set(c[(c.engine_b == "xla") & (c.arch == "k7")].status) == {"failed"}
    assert not any("xla/k7" in v.key for v in claim.claim_verdicts(run))
    table = claim.claim_table(run)
    row = next(line for line in table.splitlines() if line.startswith("PyTorch eager / TensorFlow xla"))
    assert row.rstrip(r" \\").endswith(r"\emph{failed}")
    fair = fairness.fairness(run.tidy, run.environment)
    assert fair.loc["Cells", "TensorFlow xla"] == "2 ok, 1 failed"
    v = values.scope_values(run)
    assert (v["engines/any-failed"], v["engines/cells-failed"], v["engines/cells"]) == ("1", "1", "18")
    assert "XlaRuntimeError" in v["engines/failed-cells"]


def test_fairness_table_reads_every_setting_from_the_records(run):
    fair = fairness.fairness(run.tidy, run.environment)
    assert list(fair.columns) == ["PyTorch eager", "PyTorch torchscript", "PyTorch compile", "TensorFlow eager",
                                  "TensorFlow function", "TensorFlow xla"]
    assert fair.loc["Phases timed", "TensorFlow xla"] == "derived"
    assert fair.loc["Phases timed", "PyTorch compile"] == "direct"
    assert fair.loc["Layout", "PyTorch eager"] == "NCHW" and fair.loc["Layout", "TensorFlow eager"] == "NHWC"
    assert fair.loc["Threads (intra/inter)", "TensorFlow function"] == "2/1"
    assert fair.loc["Compile time (median of every speed cell)", "PyTorch compile"] == "31.0 s"
    assert fair.loc["Compile time (median of every speed cell)", "PyTorch eager"] == "50.0 ms"
    assert fair.loc["xla_auto_jit", "TensorFlow xla"] == "False" and fair.loc["xla_auto_jit", "PyTorch eager"] == "--"
    assert list(fair.index).index("mkldnn") < list(fair.index).index("xla_auto_jit")  # PyTorch's flags first
    assert fair.loc["Warnings", "PyTorch torchscript"].startswith("torch.jit.script is deprecated.")
    assert len(fair.loc["Warnings", "PyTorch torchscript"]) <= 80
    assert fair.loc["Batch", "PyTorch eager"] == "64"
    assert "failed" not in fairness.fairness_table(run).split(r"\midrule")[0]


def test_fairness_shows_failed_for_a_setup_whose_cells_all_failed(tmp_path):
    records = [engine_record("tensorflow", "xla", a) for a in ARCHS] + [engine_record("torch", "eager", "k3")]
    for r in records[:3]:
        r.update(status="failed", error="XlaRuntimeError: boom")
        r.pop("timings", None), r.pop("engine")
    run = published(tmp_path, records)
    fair = fairness.fairness(run.tidy, run.environment)
    assert fair.loc["Cells", "TensorFlow xla"] == "0 ok, 3 failed"
    assert fair.loc["Optimizer", "TensorFlow xla"] == "failed" and fair.loc["Layout", "TensorFlow xla"] == "NHWC"
    assert claim.claim_values(run)["engines/claim/tested"] == "0"


def test_roofline_values_come_from_the_cells_fractions(run, records):
    record = next(r for r in records if r["cell_id"] == "engines_k5_tensorflow-function_cpu1-none_b64_s0_speed")
    flops, moved = record["counts"]["flops_step"], record["counts"]["bytes_step"]
    # the device's one roof: the best GEMM and copy any process of either framework measured (PyTorch's, here; these
    # records give a median and no best)
    gemm, bandwidth = (max(r["process"]["ceilings"][m]["median"] for r in records if r["cell"]["task"] == "speed")
                       for m in ("gemm_flops", "memory_bandwidth"))
    achieved = flops / record["timings"]["step"]["median"]
    rows = run.tidy[run.tidy.cell_id == record["cell_id"]].set_index("metric")
    assert rows.loc["ceiling_fraction", "value"] == pytest.approx(achieved / min(gemm, bandwidth * flops / moved))
    assert gemm > record["process"]["ceilings"]["gemm_flops"]["median"]  # not TensorFlow's own, lower roof
    v = values.roofline_values(run)
    fractions = run.tidy[run.tidy.metric == "ceiling_fraction"]["value"]
    assert v["engines/roofline/percent-min"] == percent(fractions.min())
    assert v["engines/roofline/percent-max"] == percent(fractions.max())
    assert v["engines/roofline/steps"] == str(len(fractions)) and v["engines/roofline/ran"] == "1"
    assert v["engines/roofline/any-above"] == ("1" if (fractions > 1).any() else "0")
    assert v["engines/roofline/torch-gemm-gflops"] == sig3(
        run.tidy[(run.tidy.framework == "torch") & (run.tidy.metric == "gemm_flops") & (run.tidy.task == "speed")]
        .drop_duplicates("cell_id")["value"].median() / 1e9)


def test_estimated_split_sums_to_the_measured_backward(run):
    df = run.tidy
    phases = engine_phases(df)
    times = query.summarise(df[df.study == "engines"], "time")
    for (setup, arch), rows in phases[phases.status == "ok"].groupby(["setup", "arch"]):
        split = rows.set_index("phase")["value"]
        measured = times[(times.setup == setup) & (times.arch == arch) & (times.phase == "backward")].value.iloc[0]
        assert split["backward_input"] + split["backward_weight"] == pytest.approx(measured)
        assert "backward" not in split
    # By hand for PyTorch k5: the first convolution has no backward-to-input (the images need no gradient).
    t = query.summarise(df[(df.task == "layers") & (df.framework == "torch") & (df.activation == "relu")], "time")
    t = t.set_index(["arch", "phase"])["value"]
    to_input = t["c32-o64-k5-s8-relu", "backward_input"]
    to_weight = t["c3-o32-k5-s16-relu", "backward_weight"] + t["c32-o64-k5-s8-relu", "backward_weight"]
    fraction = phases[(phases.setup == "torch-compile") & (phases.arch == "k5")].input_fraction.iloc[0]
    assert fraction == pytest.approx(to_input / (to_input + to_weight))
    v = values.split_values(run)
    assert v["engines/split/ran"] == "1" and v["engines/split/torch-larger"] == "the weights"
    fractions = phases[phases.framework == "torch"].drop_duplicates("arch")["input_fraction"]
    assert v["engines/split/torch-input-percent"] == f"{100 * fractions.median():.0f}"
    # where both frameworks' larger share went to one half, it is said once, not as a list that repeats it
    halves = {v["engines/split/torch-larger"], v["engines/split/tensorflow-larger"]}
    if len(halves) == 1:
        assert v["engines/split/larger"] == f"{halves.pop()} in both frameworks"
    else:
        assert "PyTorch" in v["engines/split/larger"] and "TensorFlow" in v["engines/split/larger"]
    # the fixture's networks share one percentage: no range over them ('42 % in PyTorch (42 % over the networks)')
    assert v["engines/split/torch-input-percent-span"] == v["engines/split/torch-input-percent"]
    assert v["engines/split/shares"] == (f"{v['engines/split/torch-input-percent']}\\,\\% in PyTorch and "
                                         f"{v['engines/split/tensorflow-input-percent']}\\,\\% in TensorFlow")


def test_without_layer_cells_the_backward_stays_whole(tmp_path):
    run = run_of(tmp_path, layers=False)
    phases = engine_phases(run.tidy)
    assert set(phases.phase.dropna()) == {"forward", "backward", "optimizer"}
    v = values.split_values(run)
    assert v["engines/split/ran"] == "0" and v["engines/split/torch-input-percent"] == "--"
    assert not LAYERS_STUDY.ran(run) and ENGINES_STUDY.ran(run)
    assert "no layer-wise cells" in layers_table(run)
    lv = layer_values(run)
    assert lv["layers/layerwise/shapes"] == "0" and lv["layers/layerwise/torch/bwd-input-over-forward"] == "--"


def test_noisy_cells_are_flagged_in_the_claim_table(run):
    cell, phase = NOISY
    df = run.tidy
    row = df[(df.cell_id == cell) & (df.metric == "time") & (df.phase == phase)].iloc[0]
    assert row.noisy == True  # noqa: E712 (a nullable boolean)
    table = claim.claim_table(run)
    compiled = [line for line in table.splitlines() if line.startswith("PyTorch compile")]
    assert all(line.split(" & ")[2].endswith(DAGGER) for line in compiled)  # k5, the noisy cell's column
    assert r"exceeded 0.1 of the median" in table


def test_layer_table_and_values_split_the_convolution_and_compare_activations(run):
    table = layers_table(run)
    assert r"32$\to$64, 5$\times$5 at 8$\times$8" in table
    df = run.tidy
    t = query.summarise(df[df.task == "layers"], "time").set_index(["arch", "framework", "phase"])["value"]
    assert sig3(t["c3-o32-k7-s16-relu", "tensorflow", "backward_weight"] * 1e3) in table
    act = lambda name, f="torch": t[name, f, "activation_forward"] + t[name, f, "activation_backward"]  # noqa: E731
    shapes = [act(f"{c}-maxout2") / act(f"{c}-relu") for c in ("c3-o32-k3-s16", "c32-o64-k3-s8")]
    assert ratio(shapes[0]) in table
    v = layer_values(run)
    assert v["layers/layerwise/torch/maxout-over-relu"] == ratio(np.median(shapes))
    assert v["layers/layerwise/torch/maxout-over-relu-shapes"] == "2" and v["layers/layerwise/torch/maxout-over-relu-word"] == "more"
    assert v["layers/layerwise/shapes"] == "6" and v["layers/layerwise/maxout-any"] == "1"
    assert float(v["layers/layerwise/tensorflow/bwd-weight-over-forward"]) == pytest.approx(2.0, abs=0.1)
    assert float(v["layers/layerwise/torch/bwd-input-over-forward"]) == pytest.approx(1.2, abs=0.1)
    achieved = df[(df.cell_id.str.contains("c3-o32-k5-s16-relu_torch")) & (df.metric == "achieved_flops")]
    assert set(achieved.phase) == {"forward", "backward_input", "backward_weight"}


def test_timing_values_derived_samples_compile_and_consistency(run):
    v = values.derived_values(run)
    s = run.samples
    derived = run.tidy[(run.tidy.phase_method == "derived") & (run.tidy.status == "ok")]["cell_id"].unique()
    opt = s[s.cell_id.isin(derived) & (s.phase == "optimizer")]["value"]
    assert v["engines/derived/optimizer-samples"] == str(len(opt))
    assert v["engines/derived/optimizer-negative"] == str((opt < 0).sum())
    assert " 0 of" not in v["engines/derived/negative-counts"] and "optimizer samples" in v["engines/derived/negative-counts"]
    c = values.compile_values(run)
    assert (c["engines/compile/max"], c["engines/compile/max-setup"]) == (r"31.0\,s", "PyTorch compile")
    k = values.consistency_values(run)
    assert k["engines/consistency/ran"] == "1" and k["engines/consistency/any-off"] == "0"
    assert 0.9 < float(k["engines/consistency/ratio-median"]) < 1.1
    within = run.tidy[(run.tidy.metric == "phase_overhead") & (run.tidy.study == "engines")]["value"]  # per launch,
    assert k["engines/consistency/ratio-max"] == f"{within.max():.2f}"  # as the method section's (every speed cell)
    scope = values.scope_values(run)
    assert scope["engines/any-derived"] == "1" and "TensorFlow xla" in scope["engines/derived-setups"]
    assert scope["engines/several-archs"] == "1"  # the figure's caption: a panel per network (one network: none)
    assert scope["engines/setups-count"] == "6" and scope["engines/layer-cells"] == str(2 * len(layer_shapes()))


def test_studies_write_figures_tables_macros_and_verdicts(run, tmp_path):
    for study, tables in ((ENGINES_STUDY, {"claim", "fairness"}), (LAYERS_STUDY, {"layers"})):
        out = analyse_study(study, run, tmp_path / study.name)
        assert {p.stem for p in (out / "tables").glob("*.tex")} == tables
        for figure in study.figures:
            assert (out / "figures" / f"{figure.name}.pdf").read_bytes().startswith(b"%PDF")
        macros = read_macros(out / "macros.tex")
        assert macros[f"{study.name}/ran"] == "1"
    engines = read_macros(tmp_path / "engines" / "macros.tex")
    backward = query.summarise(run.tidy[run.tidy.study == "engines"], "time")
    k3 = backward[(backward.setup == "torch-eager") & (backward.arch == "k3") & (backward.phase == "backward")].iloc[0]
    assert engines["engines/torch-eager/k3/backward-ms"] == ms(k3.value)
    verdicts = json.loads((tmp_path / "engines" / "verdicts.json").read_text())
    assert len(verdicts) == 24 and all(engines[v["key"]] == ratio(v["estimate"]) for v in verdicts)
    assert all(engines[v["key"] + "-word"] == verdict_word(Verdict(**{**v, "outcome": Outcome(v["outcome"]), "kind": Kind(v["kind"])})) for v in verdicts)
    layers = read_macros(tmp_path / "layers" / "macros.tex")
    assert any(k.startswith("layers/torch-eager/c3-o32-k3-s16-relu/") for k in layers)


def test_a_run_without_the_engines_study(tmp_path):
    """Speed cells of another study only: the engines flags are 0 and nothing fails."""
    records = [engine_record(f, "eager", a, study="kernel") for f in ENGINES for a in ARCHS]
    run = published(tmp_path, records)
    assert not ENGINES_STUDY.ran(run) and not LAYERS_STUDY.ran(run)
    out = analyse_study(ENGINES_STUDY, run, tmp_path / "engines")
    macros = read_macros(out / "macros.tex")
    assert macros["engines/ran"] == "0" and macros["engines/claim/tested"] == "0"
    assert macros["engines/roofline/ran"] == "1"  # the roofline covers every study's speed cells
    assert json.loads((out / "verdicts.json").read_text()) == []
    assert (out / "figures" / "engine_phases.pdf").exists()
    assert read_macros(analyse_study(LAYERS_STUDY, run, tmp_path / "layers") / "macros.tex")["layers/ran"] == "0"


def test_inductor_against_eager_per_phase(run):
    """The fixture's torch.compile cells run the forward as fast as eager and the backward in 0.8 of its time (BACKWARD):
    the ratios of the medians say so, on the CPU, over the three networks."""
    v = values.inductor_values(run)
    assert v["engines/inductor/ran"] == "1" and v["engines/inductor/cpu"] == "1" and v["engines/inductor/networks"] == "3"
    assert float(v["engines/inductor/forward-over-eager"]) == pytest.approx(1.0, abs=0.05)
    assert float(v["engines/inductor/backward-over-eager"]) == pytest.approx(0.8, abs=0.05)
    assert float(v["engines/inductor/backward-over-eager-min"]) <= float(v["engines/inductor/backward-over-eager-max"])
    assert v["engines/inductor/step-scope"].startswith("median over the 3 networks, ")


def test_inductor_over_one_network_says_which_not_a_median_over_one(tmp_path):
    """'(median over the 1 networks, 1.75 to 1.75)' was a seam: one network is named, with no median and no range."""
    run = published(tmp_path, [r for r in engine_records(layers=False) if r["cell"]["arch"]["name"] == "k3"])
    v = values.inductor_values(run)
    assert v["engines/inductor/networks"] == "1" and v["engines/inductor/step-scope"] == r"on \texttt{k3}"
    assert values.scope_values(run)["engines/several-archs"] == "0"


def test_the_cells_table_reports_no_time_for_a_phase_the_text_calls_not_resolved(run):
    """Where the text says a derived phase is not resolved (no time reported), the cells table prints a dash with a
    footnote in its place, not the median; the table gives the batch a column of its own, not a long setup label."""
    from convbench.analysis.overview import tables as overview_tables
    from convbench.analysis.overview.tables import NOT_RESOLVED_MARK, NOT_RESOLVED_NOTE
    lost = values.unresolved(run)
    assert len(lost), "the fixture should hold a derived phase lost in the noise"
    table = overview_tables.speed(run)
    rows = [line for line in table.splitlines() if "TensorFlow" in line and ("function" in line or "xla" in line)]
    assert table.count(NOT_RESOLVED_MARK) == len(lost) and NOT_RESOLVED_NOTE in table
    for r in lost.itertuples():
        t = run.tidy[(run.tidy.cell_id == r.cell_id) & (run.tidy.phase == r.phase) & (run.tidy.metric == "time")]
        assert not any(ms(v, i) in line for v, i in zip(t.value, t.iqr) for line in rows)
    assert "cpu1-none-b" not in table and "Batch" in table

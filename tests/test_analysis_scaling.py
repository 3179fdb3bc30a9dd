"""The scaling study's analysis (issue 6): efficiency, speed-up, bytes against the model, the crossover, the
straggler, failed cells, zero records, and the paper section built with LaTeX.

Fixture records follow convbench.parallel.worker (PyTorch: torchrun processes over gloo, or nccl on GPUs) and
convbench.parallel.tf_worker (TensorFlow: MirroredStrategy; tensor parallel fails in DTensor). Every timing's raw
samples are the median times 1 + 0.02 x (-3..3), so that the median is exactly the number the test names. Records go
through write_tidy + read_run, as in the pipeline.
"""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from builders.scaling import (
    APPENDIX,
    LATEX,
    SECTION,
    SECTIONS,
    analysed_in,
    arch,
    build,
    fixture_records,
    record,
    run_of,
)

from convbench.analysis import analyse_study
from convbench.analysis.latex import read_macros
from convbench.analysis.scaling import STUDY, crossover
from convbench.analysis.scaling.values import values as scaling_values
from convbench.analysis.scaling.values import verdicts as scaling_verdicts
from convbench.analysis.stats import Outcome
from convbench.analysis.study import Run
from convbench.parallel import bytes_model
from convbench.spec import ArchSpec


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    return analysed_in(fixture_records(), tmp_path_factory.mktemp("scaling"))


def test_tidy_table_holds_the_scaling_rows_and_columns(analysed):
    run, *_ = analysed
    rows = run.study("scaling")
    assert {"comm_time", "baseline_time", "exposed_communication", "payload_bytes", "wire_bytes", "loopback_bytes",
            "payload_match"} <= set(rows["metric"])
    assert set(rows["scaling_mode"]) == {"strong", "weak"} and set(rows["straggler_ms"]) == {0.0, 20.0}
    base = rows[(rows["metric"] == "baseline_time") & (rows["phase"] == "step")
                & (rows["cell_id"].str.contains("k3_torch-eager_cpu2-data-strong_"))]
    assert base["value"].iloc[0] == pytest.approx(0.020)
    assert json.loads(rows["arch_spec"].iloc[0])["blocks"][0]["width"] == 32


def test_efficiency_and_speedup_as_computed_by_hand(analysed):
    _, values, _, out = analysed
    key = "scaling/torch-eager/k3"
    assert values[f"{key}/data-strong/t2/efficiency"] == "0.80"  # baseline / step: 20 / 25
    assert values[f"{key}/data-strong/t2/speedup"] == "1.60"  # strong: the one-device step over this step
    assert values[f"{key}/data-weak/t2/speedup"] == "1.60"  # weak: twice the work, 2 x 40 / 50
    assert values[f"{key}/data-weak/t2/efficiency"] == "0.84"  # 42 / 50
    assert values[f"{key}/tensor-strong/t2/speedup"] == "1.25"  # 40 / 32
    assert values[f"{key}/none-strong/t1/speedup"] == "1.00"
    assert values["scaling/tensorflow-function/k5/data-strong/t2/speedup"] == "0.91"  # 15 / 16.5
    assert values["scaling/speedup-any"] == "1" and values["scaling/data/ran"] == "1"
    assert values["scaling/efficiency-min"] == "0.69"  # tensor parallel, k3 strong: 22 / 32
    times = (out / "tables" / "scaling_times.tex").read_text()
    assert "1.60" in times and "0.80" in times and "25.0 (" in times


def test_phases_and_verdicts(analysed):
    _, values, verdicts, out = analysed
    phases = (out / "tables" / "scaling_phases.tex").read_text()
    assert "Comm. alone" in phases and "3.00 (" in phases  # data parallel's collectives replayed alone, k3
    # tensor over data: backward 20 / 12.5 = 1.6, step 32 / 25 = 1.28; the samples' spread cannot overturn them
    backward = verdicts["scaling/verdict/torch-eager/k3/strong/t2/backward-ratio"]
    assert (backward.subject, backward.reference) == ("tensor parallel", "data parallel")
    assert round(backward.estimate, 2) == 1.60 and backward.lo > 1 and backward.outcome is Outcome.SLOWER
    assert values["scaling/verdict/torch-eager/k3/strong/t2/step-ratio"] == "1.28"
    assert values["scaling/compared"] == "4" and values["scaling/backward/data-shorter"] == "4"
    assert values["scaling/backward/tensor-shorter"] == "0" and values["scaling/backward/neither"] == "0"
    assert "data" in (out / "tables" / "scaling_verdicts.tex").read_text()


def test_bytes_against_the_model(tmp_path):
    records = fixture_records()
    spec = ArchSpec.from_dict("k3", arch(), 3, 10)
    model = bytes_model.data_parallel_bytes(spec, 2)["payload_bytes"]
    records[1] = record("torch", devices=2, parallelism="data", step=25, comm=3, payload=model + 40)
    _, values, verdicts, out = analysed_in(records, tmp_path)
    table = (out / "tables" / "scaling_bytes.tex").read_text()
    assert f"{model + 40:,}" in table and f"{model:,}" in table  # counted and modelled side by side
    assert " no " in table and " yes " in table
    tensor = bytes_model.tensor_parallel_bytes(spec, 16, 64, 2)
    assert f"{tensor['payload_bytes']:,}" in table
    assert f"{int(tensor['wire_bytes_per_rank']):,}" in table  # the ring model's wire bytes per rank
    match = verdicts["scaling/bytes/match"]
    assert match.fact == "differed from" and match.n == 10 and match.hi > 1 == match.lo
    assert (values["scaling/bytes-matched"], values["scaling/bytes-compared"]) == ("9", "10")
    assert values["scaling/bytes-all-match"] == "0"
    assert values["scaling/loopback-over-gloo"] == "1.01$\\times$"  # the loopback counter against the gloo model
    # gloo runs its reduce-scatter as an all-reduce: 1.5 times the ring model's bytes, times the fixture's 1.01
    assert values["scaling/tensor/loopback-over-ring"] == "1.51$\\times$"
    # the tensor-over-data wire range says whose wire it covers: the fixture counts PyTorch's only
    assert values["scaling/wire-pairs-any"] == "1" and values["scaling/tensor-over-data-wire-setups"] == "PyTorch eager"


def test_every_payload_equal_gives_the_word_equalled(analysed):
    _, values, verdicts, _ = analysed
    assert verdicts["scaling/bytes/match"].fact == "equalled" and values["scaling/bytes-all-match"] == "1"


def crossover_by_hand(widths, kernel, image=16, classes=10, in_channels=3, t=2) -> int:
    """Ring model: data parallel 2(t-1)/t x 4 x parameters; tensor parallel 2(t-1)/t x (maps of the first block after
    its pool + 2 x logits) x 4 per example of the global batch."""
    w1, w2 = widths
    params = kernel**2 * in_channels * w1 + w1 + kernel**2 * w1 * w2 + w2 + w2 * classes + classes
    per_example = w1 * (image // 2) ** 2 + 2 * classes
    exact = params / per_example
    return int(np.ceil(exact)) - 1


def test_crossover_follows_the_widths_and_batches(tmp_path):
    narrow = scaling_values(run_of(fixture_records(), tmp_path / "narrow"))
    wide = scaling_values(run_of(fixture_records(widths=(64, 128)), tmp_path / "wide"))
    small = scaling_values(run_of(fixture_records(batch_size=8), tmp_path / "small"))
    for values, widths in [(narrow, (32, 64)), (wide, (64, 128))]:
        for k in crossover.KERNELS:
            assert values[f"scaling/crossover/k{k}-batch"] == str(crossover_by_hand(widths, k))
    assert narrow["scaling/crossover/k3-batch"] == "9" and narrow["scaling/crossover/k9-batch"] == "84"
    assert narrow["scaling/crossover-widths"] == "32 and 64" and wide["scaling/crossover-widths"] == "64 and 128"
    assert narrow["scaling/crossover-same-t"] == "1" and narrow["scaling/crossover-grows"] == "1"
    # At a global batch of 64 and 128 data parallel moves fewer bytes with both kernels; at 8 tensor parallel does for
    # 3x3 (crossover 9) and 5x5 (26), and at 16 (weak scaling's global batch) for 5x5 only.
    assert (narrow["scaling/crossover-measured"], narrow["scaling/crossover-tensor-fewer"]) == ("4", "0")
    assert (small["scaling/crossover-measured"], small["scaling/crossover-tensor-fewer"]) == ("4", "3")
    table = (analyse_study(STUDY, run_of(fixture_records(), tmp_path / "table"), tmp_path / "out")
             / "tables" / "scaling_crossover.tex").read_text()
    assert "9x9" in table and " 84 " in table


def test_straggler_ratio(analysed):
    _, values, verdicts, out = analysed
    key = "scaling/straggler/torch-eager/k3"
    assert values[f"{key}/data/t2/ratio"] == "1.80"  # 45 / 25
    assert values[f"{key}/data/t2/added-ms"] == "20.0"
    assert values[f"{key}/tensor/t2/ratio"] == "1.69"  # 54 / 32
    v = verdicts[f"{key}/data/t2/ratio"]
    assert v.lo < 1.80 < v.hi and v.outcome is Outcome.SLOWER  # 20 ms added for a delay of 20 ms
    assert values["scaling/straggler-waited-all"] == "1" and values["scaling/delays"] == "20"
    assert values["scaling/data/straggler-ratio"] == "1.80$\\times$"  # k3 and k5 alike
    assert "1.80 [" in (out / "tables" / "scaling_straggler.tex").read_text()


def test_failed_tensorflow_tensor_cell_is_shown_with_its_error(analysed):
    _, values, _, out = analysed
    assert "\\emph{failed}" in (out / "tables" / "scaling_times.tex").read_text()
    failed = (out / "tables" / "scaling_failed.tex").read_text()
    assert "In short: Filter for convolution must have fully replicated layout." in failed
    assert "scaling\\char95\\allowbreak{}k3\\char95\\allowbreak{}tensorflow-function" in failed
    assert (values["scaling/tf-tensor-failed"], values["scaling/tf-tensor-cells"]) == ("2", "2")
    assert values["scaling/tf-version"] == "2.21.0"
    assert "Filter for convolution must have fully replicated layout." in values["scaling/tf-tensor-error"]
    assert values["scaling/cells-failed"] == "2" and values["scaling/failed-any"] == "1"
    assert values["scaling/hybrid-ran"] == "0"
    assert "NotImplementedError: hybrid parallelism" in values["scaling/hybrid-error"]  # from the workers' code


def test_a_failed_hybrid_cell_quotes_its_record(tmp_path):
    error = ("rank 0: Traceback (most recent call last):\n  File \"worker.py\", line 50, in check\n"
             "NotImplementedError: hybrid parallelism (data-parallel convolutions, model-parallel classifier) is not "
             "built: splitting a 640-weight classifier saves next to nothing\n")
    records = [*fixture_records(), record("torch", devices=2, parallelism="hybrid", failed=error)]
    values = scaling_values(run_of(records, tmp_path))
    assert (values["scaling/hybrid-ran"], values["scaling/hybrid-failed"]) == ("1", "1")
    assert "splitting a 640-weight classifier" in values["scaling/hybrid-error"]
    assert "rank 0" not in values["scaling/hybrid-error"]


def test_no_failed_cell_leaves_no_table_to_refer_to(tmp_path):
    records = [r for r in fixture_records() if r["status"] == "ok"]
    _, values, _, out = analysed_in(records, tmp_path)
    assert values["scaling/failed-any"] == "0"
    assert "tab:scaling-failed" not in (out / "tables" / "scaling_failed.tex").read_text()


def empty_run(tmp_path, records) -> Run:
    if not records:
        return Run(pd.DataFrame(), pd.DataFrame(columns=["cell_id", "phase", "repeat", "value"]), pd.DataFrame())
    return run_of(records, tmp_path)


@pytest.mark.parametrize("kind", ["none", "no-scaling-cell"])
def test_zero_records_give_placeholders_and_flags(tmp_path, kind):
    other = record()
    other["cell"] |= {"study": "kernel", "task": "speed"}
    run = empty_run(tmp_path, [] if kind == "none" else [other])
    out = analyse_study(STUDY, run, tmp_path / "out")
    for figure in STUDY.figures:
        assert (out / "figures" / f"{figure.name}.pdf").stat().st_size > 0
    for table in STUDY.tables:
        assert (out / "tables" / f"{table.name}.tex").exists()
    assert "No scaling cells ran" in (out / "tables" / "scaling_times.tex").read_text()
    values = read_macros(out / "macros.tex")
    assert values["scaling/ran"] == "0" and values["scaling/cells"] == "0" and values["scaling/failed-any"] == "0"
    assert scaling_verdicts(run) == []


def tex(path: Path) -> str:
    return re.sub(r"(?m)(?<!\\)%.*$", "", path.read_text())


def test_section_quotes_only_its_own_keys_tables_and_figures():
    text = tex(SECTION) + tex(SECTIONS / "scaling-projection.tex") + tex(APPENDIX)
    keys = set(re.findall(r"\\(?:cb|ifcb)\{([^}]+)\}", text))
    assert keys and all(k.startswith("scaling/") for k in keys)
    assert set(re.findall(r"\\input\{tables/([^}]+)\}", text)) == {t.name for t in STUDY.tables}
    assert set(re.findall(r"\\includegraphics\[[^]]*\]\{figures/([^}]+)\.pdf\}", text)) == {
        f.name for f in STUDY.figures}
    typed = re.findall(r"\d+\.\d+|\d+\s*\\?%|\d+\s*(?:ms|s)\b", text)
    assert not typed, typed


def test_more_devices_on_gpus(tmp_path):
    """1, 2, 4 and 8 GPUs: keys and panels per device count, and no word of simulated devices."""
    a = arch("k3", 3, (64, 128))
    records = [record("torch", archd=a, devices=1, step=8.0, device="cuda", batch_size=256)]
    for t in (2, 4, 8):
        for parallelism, step in (("data", 8.0 / t * 1.1), ("tensor", 8.0 / t * 1.4)):
            records.append(record("torch", archd=a, devices=t, parallelism=parallelism, step=step, baseline=8.0 / t,
                                  comm=0.2, device="cuda", batch_size=256))
    _, values, _, out = analysed_in(records, tmp_path)
    assert values["scaling/torch-eager/k3/data-strong/t8/speedup"] == f"{8 / 1.1:.2f}"
    assert values["scaling/torch-eager/k3/tensor-strong/t4/efficiency"] == f"{1 / 1.4:.2f}"
    assert values["scaling/device-counts"] == "1, 2, 4 and 8"
    assert values["scaling/crossover-devices"] == "2, 4 and 8"
    assert (values["scaling/on-cpu"], values["scaling/on-gpu"]) == ("0", "1")
    assert values["scaling/gpu-models"] == "NVIDIA H200" and values["scaling/gpu-max"] == "8"
    assert values["scaling/compared-devices"] == "2, 4 and 8" and values["scaling/loopback-ran"] == "0"
    for figure in STUDY.figures:
        assert (out / "figures" / f"{figure.name}.pdf").stat().st_size > 5000  # drawn, not a placeholder


@LATEX
def test_section_builds_with_latex_and_shows_the_fixture(analysed, tmp_path):
    run, _, _, out = analysed
    text = build(out.parent, tmp_path)
    assert "The backward pass on several devices" in text
    assert "Data parallel reached speed-ups of" in text
    assert "Filter for convolution must have fully replicated layout." in text
    assert "??" not in text.replace("[?]", "")  # every table and figure reference resolved


@LATEX
def test_section_builds_without_scaling_cells(tmp_path):
    analyse_study(STUDY, empty_run(tmp_path, []), tmp_path / "generated" / "scaling")
    text = build(tmp_path / "generated", tmp_path)
    assert "This run has no scaling cell" in text and "??" not in text.replace("[?]", "")


def test_imports_no_framework():
    code = ("import sys, convbench.analysis.scaling, convbench.analysis.reference; "
            "loaded = [m for m in sys.modules if m.split('.')[0] in ('torch', 'tensorflow', 'keras')]; "
            "assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", code], check=True)


def with_launches(rec: dict, factors) -> dict:
    """The record as convbench.launches merges it: one launch per factor, each launch's phases and step that factor
    times the record's."""
    def scaled(s, f):
        return {**s, "median": s["median"] * f, "samples": [x * f for x in s["samples"]]}
    t = rec["timings"]
    launches = [{"launch": i, "phase_method": t["phase_method"], "phases": {p: scaled(s, f) for p, s in
                                                                             t["phases"].items()},
                 "step": scaled(t["step"], f)} for i, f in enumerate(factors, 1)]
    return {**rec, "timings": {**t, "launches": launches}}


def test_tensor_over_data_is_judged_over_launches(tmp_path):
    """With launches, the ratio's interval is the t interval of the paired launch log ratios (stats.launch_ratio):
    three launches that disagree by 20 % make a 1.2x backward undecided, where one launch's samples resolved it."""
    records = fixture_records(archs=(("k3", 3),))
    for i, r in enumerate(records):
        if r["status"] == "ok" and r["cell"]["parallelism"] == "tensor" and r["cell"]["settings"]["scaling"] == "strong" \
                and not r["cell"]["settings"]["straggler_ms"] and r["cell"]["framework"] == "torch":
            records[i] = with_launches(r, (0.8, 1.0, 1.2))
        elif r["status"] == "ok":
            records[i] = with_launches(r, (1.0, 1.0, 1.0))
    run, values, verdicts, _ = analysed_in(records, tmp_path)
    v = verdicts["scaling/verdict/torch-eager/k3/strong/t2/backward-ratio"]
    logs = np.log(np.array([0.8, 1.0, 1.2]) * 1.6)
    half = 4.302652729911275 * logs.std(ddof=1) / np.sqrt(3)  # t quantile 0.975 at 2 degrees of freedom
    assert v.estimate == pytest.approx(np.exp(logs.mean()))
    assert (v.lo, v.hi) == pytest.approx((np.exp(logs.mean() - half), np.exp(logs.mean() + half)))
    assert v.lo < 1 < v.hi and v.outcome in (Outcome.EQUIVALENT, Outcome.UNDECIDED)
    assert values["scaling/launches"] == "3" and values["scaling/by-launch"] == "1"
    equivalent = values["scaling/backward/equivalent"]  # a count phrase without a zero ('0 of them equivalent')
    assert values["scaling/backward/equivalent-of-them"] == ("none of them" if equivalent == "0" else f"{equivalent} of them")


def test_count_sentences_leave_out_zeros_and_one_of_one():
    """'Of the 1 kernel and global-batch pairs measured here, tensor parallel moves fewer bytes at 0' and '0 cells
    were within the goal' were seams: no zero count, no plural after one."""
    from convbench.analysis.scaling.values import fewer_text, within_text
    assert fewer_text(0, 1) == ("At the one kernel and global-batch pair measured here, tensor parallel does not move "
                                "fewer bytes")
    assert fewer_text(0, 4) == ("At none of the four kernel and global-batch pairs measured here does tensor parallel "
                                "move fewer bytes")
    assert fewer_text(2, 4).endswith("fewer bytes at 2") and fewer_text(4, 4).startswith("At all four")
    assert within_text(0, 3) == "none of the 3 cells were" and within_text(1, 3) == "1 of the 3 cells was"
    assert within_text(0, 1) == "no cell was" and within_text(3, 3) == "all 3 cells were"
    from convbench.analysis.scaling.values import scope_values
    one = pd.DataFrame({"status": ["ok"], "straggler_ms": [0], "devices": [1], "setup": ["torch-eager"], "arch": ["k3"],
                        "parallelism": ["none"], "mode": ["strong"], "batch_size": [64], "image_size": [16.0]})
    assert scope_values(one)["scaling/failed-text"] == "none failed"


def test_the_phases_table_prints_minus_signs_and_plain_dashes(analysed):
    """A missing exposed time is a dash, not a minus before a dash ('$-$-'), and a derived phase below zero has a
    minus sign, not a hyphen."""
    from convbench.analysis.formatting import signed
    from convbench.analysis.scaling import tables
    run, *_ = analysed
    text = tables.phases(run)
    assert "$-$-" not in text and not re.search(r"(?<![\w$])-\d", text)
    assert signed("--") == "--" and signed("-0.181 (1.099)") == "$-$0.181 (1.099)"


def test_a_phase_the_data_cannot_tell_from_zero_gets_no_time(analysed):
    """Table 18 printed TensorFlow's derived optimizer as -0.181 (1.099) ms beside text saying that no time is reported
    for a derived phase the data cannot tell from zero (tidy.resolve decides it once for every study)."""
    from convbench.analysis.formatting import NOT_RESOLVED_MARK
    from convbench.analysis.scaling import cells, tables
    run, *_ = analysed
    assert NOT_RESOLVED_MARK not in tables.phases(run)
    rows = (run.tidy["task"] == cells.TASK) & (run.tidy["metric"] == "time") & (run.tidy["phase"] == "optimizer")
    assert rows.any()
    run.tidy.loc[rows, "resolved"] = False
    text = tables.phases(run)
    shown = cells.timed(cells.cells(run))  # the table's rows: no straggler
    assert text.count(NOT_RESOLVED_MARK) == len(shown) and "Not resolved" in text
    # and no tensor-over-data verdict rests on a phase that was not resolved (Table 22 drew one)
    rows = (run.tidy["task"] == cells.TASK) & (run.tidy["metric"] == "time") & (run.tidy["phase"] == "backward")
    run.tidy.loc[rows, "resolved"] = False
    found = cells.comparisons(cells.cells(run), run)
    assert len(found) and found["backward_ratio"].isna().all(), found
    assert found["backward_outcome"].tolist() == [Outcome.UNDECIDED] * len(found)
    assert found["step_ratio"].notna().all()
    assert tables.verdicts(run).count(NOT_RESOLVED_MARK) == len(found)


def test_figures_say_one_network_or_mode_once_and_label_the_byte_lines(tmp_path, monkeypatch):
    """With one network and one scaling mode, the speed-up figure names both once (title, axis label), not as a
    legend of one entry or an axis of one category; the phases figure's tick labels leave them out (they collided);
    the bytes figure labels its lines where they end and keeps a legend of the markers only (it had ten entries)."""
    from convbench.analysis.scaling import figures
    records = [r for r in fixture_records() if r["cell"]["arch"]["name"] == "k3"
               and r["cell"]["settings"].get("scaling") == "strong"]
    run, *_ = analysed_in(records, tmp_path / "k3")
    drawn = []
    monkeypatch.setattr(figures, "save", lambda fig, path, **_: drawn.append(fig) or path)
    figures.speedup(run, tmp_path / "speedup.pdf")
    fig = drawn[-1]
    assert not fig.legends and all(ax.get_title().endswith("(k3)") for ax in fig.axes if ax.get_title())
    ticks = [t.get_text() for ax in fig.axes for t in ax.get_xticklabels()]
    assert ticks and not any("\n" in t for t in ticks)  # the scheme alone: one mode, one device count
    assert any(ax.get_xlabel().endswith("scaling") for ax in fig.axes)
    figures.bytes_(run, tmp_path / "bytes.pdf")
    fig = drawn[-1]
    assert len(fig.legends[0].get_texts()) == 4
    assert any(t.get_text().startswith("data ") for ax in fig.axes for t in ax.texts)


def test_an_efficiency_above_one_is_said_and_weighed_against_the_spread():
    """A parallel step shorter than its own no-communication baseline (efficiency 1.03 in the full run) is above what
    any split can earn: the text says so, and whether the two steps' quartile range reaches 1."""
    from convbench.analysis.scaling.values import speedup_values
    cells = pd.DataFrame({"status": "ok", "straggler_ms": 0.0, "parallelism": ["data", "tensor", "data"],
                          "speedup": [1.4, 1.1, 0.9], "devices": 2, "efficiency": [1.03, 0.7, 0.9],
                          "efficiency_lo": [0.9, 0.6, 0.8], "ref_step": 1.0, "ref_step_iqr": 0.1,
                          "setup": "torch-eager", "arch": "k3", "mode": "strong"})
    values = speedup_values(cells)
    assert values["scaling/efficiency-above"] == "1 of the 3 parallel cells"
    assert values["scaling/efficiency-above-spread"] == "1"
    values = speedup_values(cells.assign(efficiency_lo=[1.01, 0.6, 0.8]))
    assert values["scaling/efficiency-above-spread"] == "0"
    assert speedup_values(cells.assign(efficiency=[1.0, 0.7, 0.9]))["scaling/efficiency-above-any"] == "0"

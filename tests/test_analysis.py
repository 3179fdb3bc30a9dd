"""Analysis, shared part: records -> tidy table -> every study's outputs; the overview study. Fixture records are
written like a real run's (other test files import make_record and write_run from here)."""
import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from builders.run import ACCURACY, FAILED, load, make_record, write_run

from convbench.analysis import analyse, read_run, registry, tidy, write_tidy
from convbench.analysis.formatting import escape, thousands, tt
from convbench.analysis.latex import read_macros
from convbench.analysis.records import RecordError, load_records, parse


@pytest.fixture
def run(tmp_path):
    return write_run(tmp_path)


def test_tidy_has_one_row_per_cell_metric_phase(run):
    df = tidy.tidy(load_records(run))
    assert df["cell_id"].nunique() == 2 * 2 * 8
    speed = df[(df.cell_id == "kernel_k5_torch-eager_cpu1-none_b64_s0_speed") & (df.metric == "time")]
    assert sorted(speed.phase) == ["backward", "forward", "optimizer", "step", "total"]
    record = load(run, study="kernel", arch="k5", framework="torch", task="speed")
    backward = speed.set_index("phase").loc["backward"]
    assert backward.value == record["timings"]["phases"]["backward"]["median"]
    assert backward.iqr == record["timings"]["phases"]["backward"]["iqr"]
    assert backward.n == 20
    stack = load(run, study="kernel", arch="k3-stack2", framework="torch", task="speed")
    row = df[df.cell_id == stack["cell_id"]].iloc[0]
    assert (row.kernel, row.depth, row.receptive_field) == (3, 2, 5)
    assert (row.params, row.flops) == (stack["counts"]["params"], stack["counts"]["flops_forward"])
    train = df[df.cell_id == "activation_maxout2-eqwidth_torch-eager_cpu1-none_b64_s0_train"].set_index("metric")
    assert train.loc["test_accuracy", "value"] == pytest.approx(ACCURACY["maxout2-eqwidth"])
    assert train.loc["gap", "value"] == pytest.approx(train.loc["train_accuracy", "value"] - train.loc["test_accuracy", "value"])
    assert train.loc["test_accuracy", "phase"] == "final" and train.loc["test_accuracy", "pieces"] == 2
    assert train.loc["test_accuracy", "train_size"] == 1347
    for column in ("study", "task", "framework", "engine", "device", "devices", "arch", "kernel", "depth", "activation",
                   "pieces", "params", "flops", "batch_size", "seed", "status", "metric", "phase", "value", "iqr", "cv", "n"):
        assert column in df.columns


def test_the_published_table_reads_back_as_it_was_written(run, tmp_path):
    """Studies draw from tidy.csv, not from the records: the round trip keeps every value and the noisy flags."""
    records = load_records(run)
    out = write_tidy(run, tmp_path / "generated")
    back = read_run(out)
    direct = tidy.resolve(tidy.tidy(records, registry.STUDIES.values()), tidy.samples(records))  # and resolved flags
    assert back.tidy.shape == direct.shape and "resolved" in back.tidy
    pd.testing.assert_series_equal(back.tidy["value"], direct["value"])
    assert back.tidy["noisy"].dtype == "boolean"
    assert len(back.samples) == len(tidy.samples(records)) > 0


def test_a_study_adds_its_own_columns_to_the_table_through_its_hook(run):
    """The shared table knows no study: the kernel study's hook (Study.columns) adds its cells' shape per block."""
    records = load_records(run)
    plain, hooked = tidy.tidy(records), tidy.tidy(records, registry.STUDIES.values())
    assert "kernels" not in plain and len(hooked) == len(plain)
    kernel = hooked[hooked["study"] == "kernel"]
    assert kernel["kernels"].notna().all() and hooked.loc[hooked["study"] != "kernel", "kernels"].isna().all()


def test_a_record_is_plain_typed_data(run):
    record = parse(load(run, study="kernel", arch="k5", framework="torch", task="speed"))
    assert record.cell.setup == "torch-eager" and record.cell.devices == 1 and record.ok
    assert record.timings.phases["backward"].n == 20 and len(record.timings.phases["backward"].samples) == 20
    assert record.timings.step.median > 0 and record.counts["params"] > 0


def test_failed_record_keeps_one_row_with_its_error(run):
    df = tidy.tidy(load_records(run))
    failed = df[df.status == "failed"]
    assert list(failed.cell_id) == [FAILED]
    assert failed.iloc[0].error == "ResourceExhaustedError: OOM when allocating tensor"


@pytest.mark.parametrize("content, reason", [("{not json", "not a readable JSON"),
                                             (json.dumps({"schema_version": 1, "cell_id": "x", "status": "ok"}), "missing key")])
def test_malformed_record_raises_naming_the_file(run, content, reason):
    bad = run / "speed" / "torch" / "broken.json"
    bad.write_text(content)
    with pytest.raises(RecordError, match=reason) as error:
        load_records(run)
    assert str(bad) in str(error.value)


def _nan_median(r):
    r["timings"]["phases"]["backward"]["median"] = float("nan")


def _negative_step(r):
    r["timings"]["step"]["median"] = -0.01


def _nan_sample(r):
    r["timings"]["phases"]["forward"]["samples"][3] = float("nan")


@pytest.mark.parametrize("task, damage, reason", [
    ("speed", _nan_median, r"timings\.phases\.backward\.median: nan is not of type 'number'"),
    ("speed", _negative_step, r"timings\.step\.median: -0\.01 is less than the minimum of 0"),
    ("speed", _nan_sample, r"timings\.phases\.forward\.samples\.3: nan is not of type 'number'"),
    ("train", lambda r: r["training"]["epochs"][2].update(test_accuracy=1.085),
     r"training\.epochs\.2\.test_accuracy: 1\.085 is greater than the maximum of 1"),
    ("speed", lambda r: r.update(schema_version=2), r"schema_version: 1 was expected"),
], ids=["NaN median", "negative time", "NaN sample", "accuracy above 100 %", "unknown schema_version"])
def test_a_record_value_the_analysis_cannot_use_is_refused_naming_the_file(run, task, damage, reason):
    path = run / task / "torch" / f"kernel_k5_torch-eager_cpu1-none_b64_s0_{task}.json"
    record = json.loads(path.read_text())
    damage(record)
    path.write_text(json.dumps(record))
    with pytest.raises(RecordError, match=rf"^{path}: invalid result record: {reason}$"):
        load_records(run)


def test_one_cell_under_two_ids_is_refused_naming_both_files(run):
    """A copy of a record under another cell_id counted the cell twice (a ratio went from 6.94 to 10.26)."""
    first = run / "speed" / "torch" / "kernel_k5_torch-eager_cpu1-none_b64_s0_speed.json"
    record = {**json.loads(first.read_text()), "cell_id": "kernel_k5-copy_torch-eager_cpu1-none_b64_s0_speed"}
    second = first.with_name(f"{record['cell_id']}.json")
    second.write_text(json.dumps(record))
    with pytest.raises(RecordError, match=rf"^{first}: the cell of {second} under another cell_id "
                                          rf"\('kernel_k5_torch-eager_cpu1-none_b64_s0_speed'\); keep one of the two"):
        load_records(run)


def test_a_records_folder_that_is_a_symbolic_link_is_read(run, tmp_path):
    """A subfolder linked in (a run's records gathered from several places) was skipped without a word."""
    elsewhere = tmp_path / "elsewhere"
    (run / "train").rename(elsewhere)
    (run / "train").symlink_to(elsewhere, target_is_directory=True)
    (elsewhere / "loop").symlink_to(run, target_is_directory=True)  # a link back up is not followed round again
    assert len(load_records(run)) == 32
    result = subprocess.run([sys.executable, "-m", "convbench", "tidy", "--records", str(run / "train"), "--out",
                             str(tmp_path / "generated")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_records_from_several_directories_and_files(run):
    dirs = [run / "speed", run / "train" / "torch"]
    one = next((run / "train" / "tensorflow").glob("*.json"))
    assert len(load_records([*dirs, one])) == 16 + 8 + 1
    with pytest.raises(RecordError, match="already read from"):
        load_records([run, one])


def test_empty_or_missing_directory_raises(tmp_path):
    with pytest.raises(RecordError, match="no result records"):
        load_records(tmp_path)
    with pytest.raises(RecordError, match="no such records directory"):
        load_records(tmp_path / "absent")


def test_environment_values_read_as_prose():
    """Thread counts per kind of cell (1 training, 2 timing; on several devices whatever each ran with), where they
    differ 'a or b', not 'a; b'; a name with an underscore (x86_64) is set in typewriter, whose underscore survives
    PDF text extraction."""
    from convbench.analysis.overview.values import env_values
    env = pd.DataFrame({"framework": ["torch", "torch", "torch", "torch", "tensorflow"],
                        "cell_id": ["k_a_train", "k_a_speed", "s_a_scaling", "s_b_scaling", "k_b_speed"],
                        "cpu_model": "Xeon", "cpu_count": 2,
                        "device_model": "x86_64", "platform": "Linux-6.18-x86_64-with-glibc2.36",
                        "threads.intra_op": [1, 2, 1, 2, 2], "threads.inter_op": [1, 1, 1, 1, 1]})
    values = env_values(env)
    assert values["env/threads/torch"] == "2/1 timed, 1/1 training, (1 or 2)/1 on several devices"
    assert values["env/threads/tensorflow"] == "2/1 timed"
    assert env_values(env.drop(columns="cell_id"))["env/threads/torch"] == "(1 or 2)/1"  # no ids: one group
    assert values["env/hardware"] == r"Xeon (2 logical CPUs) with \texttt{x86\char95\allowbreak{}64}"
    assert values["env/platform"].startswith(r"\texttt{Linux-6.18-x86\char95")


def test_overview_values_come_from_the_records(run, tmp_path):
    out = analyse(run, tmp_path / "generated", command="snakemake --cores 2", studies=["overview"])
    values = read_macros(out / "overview" / "macros.tex")
    assert values["overview/run/cells"] == "32" and values["overview/run/cells-failed"] == "1" and values["overview/failed"] == "1"
    assert values["overview/run/failed-text"] == "1 failed"  # 'none failed' where none did, not '0 failed'
    assert values["overview/env/git-commit"] == "abc123def456"
    assert "AMD EPYC 7B13" in values["overview/env/hardware"]
    assert "2.13.0+cpu" in values["overview/env/versions"] and "3.15.1" in values["overview/env/versions"]
    assert "snakemake --cores 2" in values["overview/run/command"]
    assert values["overview/import/torch-s"] == "4.3" and values["overview/trained"] == "1" and values["overview/timed"] == "1"
    assert values["overview/speed/repeats"] == "20"
    archs = (out / "overview" / "tables" / "architectures.tex").read_text()
    df = pd.read_csv(out / "tidy.csv")
    assert thousands(df[df.arch == "k3-stack3"].params.iloc[0]) in archs
    failed = (out / "overview" / "tables" / "failed.tex").read_text()
    assert tt(FAILED) in failed and "ResourceExhaustedError: OOM when allocating tensor" in failed
    assert "2.21.0" in (out / "overview" / "tables" / "environment.tex").read_text()


def test_analyse_writes_every_registered_figure_and_table(run, tmp_path):
    out = analyse(run, tmp_path / "generated")
    for name, (study, _) in registry.FIGURES.items():
        assert (out / study / "figures" / f"{name}.pdf").read_bytes().startswith(b"%PDF"), name
    for name, (study, _) in registry.TABLES.items():
        assert (out / study / "tables" / f"{name}.tex").exists(), name
    for study in registry.STUDIES:
        assert read_macros(out / study / "macros.tex")[f"{study}/ran"] in ("0", "1")
        json.loads((out / study / "verdicts.json").read_text())


def test_no_failed_cell_no_failed_table(tmp_path):
    records = tmp_path / "records"
    r = make_record("kernel", "speed", "torch", "k5")
    (records / "speed").mkdir(parents=True)
    (records / "speed" / f"{r['cell_id']}.json").write_text(json.dumps(r))
    out = analyse(records, tmp_path / "generated", studies=["overview"])
    assert read_macros(out / "overview" / "macros.tex")["overview/failed"] == "0"
    assert (out / "overview" / "tables" / "failed.tex").read_text() == ""


def test_a_run_where_every_cell_failed_still_analyses(tmp_path):
    """Every study, every figure: a placeholder page or an empty table, never a crash."""
    records = tmp_path / "records"
    records.mkdir()
    for arch in ["k3", "k5"]:
        r = make_record("kernel", "speed", "torch", arch)
        r.update(status="failed", error="RuntimeError: boom")
        del r["timings"]
        (records / f"{r['cell_id']}.json").write_text(json.dumps(r))
    out = analyse(records, tmp_path / "generated")
    assert read_macros(out / "overview" / "macros.tex")["overview/run/cells-failed"] == "2"
    assert "RuntimeError: boom" in (out / "overview" / "tables" / "failed.tex").read_text()
    for name, (study, _) in registry.FIGURES.items():
        assert (out / study / "figures" / f"{name}.pdf").read_bytes().startswith(b"%PDF"), name


def test_escape():
    assert escape("k3_stack 50% & #1") == r"k3\_stack 50\% \& \#1"


def test_analysis_imports_no_framework():
    code = "import sys, convbench.analysis.registry; print(sorted({'torch', 'tensorflow'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip() == "[]"


def test_environment_table_takes_list_valued_fields(tmp_path):
    """Records of several devices hold per-rank lists in their environment; the table lists them, not crashes."""
    from convbench.analysis.overview.tables import environment
    from convbench.analysis.study import Run

    env = pd.DataFrame([{"cell_id": "a", "framework": "torch", "engine": "eager", "status": "ok",
                         "ranks.threads": [1, 1], "python": "3.11.7"},
                        {"cell_id": "b", "framework": "torch", "engine": "eager", "status": "ok",
                         "ranks.threads": [], "python": "3.11.7"}])
    path = tmp_path / "environment.csv"
    env.to_csv(path, index=False)  # as the pipeline publishes it
    back = pd.read_csv(path, dtype=str, keep_default_na=False).replace("", None)
    table = environment(Run(pd.DataFrame(), pd.DataFrame(), back))
    assert "[1, 1]" in table and "3.11.7" in table


def test_an_interrupted_jobs_staging_folder_is_not_read(run):
    """After a kill, a job's finished records wait in <group>.partial until its rerun: the analysis reads the
    records folder only, so a cell is never read twice."""
    staged = run / "speed" / "torch.partial"
    staged.mkdir()
    for path in (run / "speed" / "torch").glob("*.json"):
        staged.joinpath(path.name).write_text(path.read_text())
    assert len(load_records(run)) == 32


def test_epoch_caps_and_data_sets_are_said_per_study():
    """Studies set caps of their own (a fraction f of a split gets 1/f times its study's): the text names each cap
    with its studies, not one range over all; one data set trained at two sizes is named once, with what differs."""
    from convbench.analysis.overview.runs import per_study
    from convbench.analysis.overview.values import data_sets
    rows = pd.DataFrame({"study": ["kernel", "activation", "activation", "activation", "learned"],
                         "dataset": ["planted", "mnist5k", "mnist5k", "planted", "planted"],
                         "train_fraction": [1, 1, 0.5, 1, 1], "metric": "criterion_max_epochs",
                         "value": [30, 30, 60, 80, 60]})
    # the fraction's cap is its study's at the whole split; a study that set it per data set says which
    assert per_study(rows, "criterion_max_epochs") == (r"30 (\texttt{activation} on \texttt{mnist5k} and "
                                                       r"\texttt{kernel}), 60 (\texttt{learned}) and 80 "
                                                       r"(\texttt{activation} on \texttt{planted})")
    assert per_study(rows[rows.study == "kernel"], "criterion_max_epochs") == "30"
    minimum = rows.assign(metric="criterion_min_epochs", value=[20, 20, 20, 20, 8])  # not scaled by the fraction
    assert per_study(minimum, "criterion_min_epochs") == r"8 (\texttt{learned}) and 20 (\texttt{activation} and \texttt{kernel})"
    trained = pd.DataFrame({"dataset": "planted", "study": ["kernel", "tracking", "tracking", "activation"],
                            "train_size": [2000, 4000, 4000, 4000], "test_size": 500, "planted_scale": [11, 7, 11, 13],
                            "planted_scales": ["11", "7", "11", "5 9 13"]})
    text = data_sets(trained)
    assert text.count("planted") == 1 and "at scale 11, in \\texttt{kernel}" in text
    assert "4000 training and 500 test images at scales 7 and 11, one per run, in \\texttt{tracking}" in text
    assert "4000 training and 500 test images at scales 5, 9 and 13, each image drawing its own, in \\texttt{activation}" in text


def test_launch_cv_text_quotes_the_table_it_cites_and_the_layer_timings_apart():
    """The text's CV maximum cited Table tab:launch-cv but was taken over the layer cells too (50.9 against the
    table's 22.6): the speed cells' CVs and the layer cells' are now quoted apart; the table keeps each batch's cell."""
    from convbench.analysis.overview.launches import values
    rows = pd.DataFrame({"status": "ok", "metric": "launch_cv", "phase_method": "timed", "phase": "forward",
                         "task": ["speed", "speed", "layers"], "value": [0.05, 0.20, 0.50], "min_seconds": 0.1,
                         "cell_id": ["a", "b", "c"], "launch": 1})
    out = values(rows)
    assert out["speed/launch-cv-max"] == "20.0" and out["speed/launch-cv-median"] == "12.5"
    assert out["speed/launch-cv-layers-max"] == "50.0" and out["speed/launch-cv-layers-any"] == "1"


def test_phase_sum_is_quoted_within_a_launch_and_as_the_tables_medians_apart():
    """Within each launch the phases summed to about the step (phase_overhead); medians over launches taken phase by
    phase (the tables') can come from different launches and sum further off: the text says both, each scoped."""
    from convbench.analysis.overview.launches import values
    rows = pd.DataFrame({"status": "ok", "task": "speed", "cell_id": ["a"] * 3 + ["b"] * 3, "min_seconds": 0.1,
                         "metric": ["phase_overhead", "time", "time"] * 2, "phase": ["step", "total", "step"] * 2,
                         "value": [1.08, 0.0486, 0.0356, 0.99, 0.010, 0.010], "phase_method": "direct"})
    out = values(rows)
    assert out["speed/phase-overhead-span"] == r"0.99--1.08$\times$"
    assert out["speed/phase-sum-span"] == r"1.00--1.37$\times$"


def test_environment_reads_as_the_cells_recorded_it(tmp_path):
    """A count the csv read back as a float (world size 2.0) prints as an integer, a version never loses its '.0'; a
    name with an underscore keeps it in typewriter; several commits say how many cells ran at each, and mixed
    working trees how many were dirty; one kind of device in several counts is named once."""
    from convbench.analysis.overview.tables import environment
    from convbench.analysis.overview.values import device_words, git_values
    from convbench.analysis.study import Run
    env = pd.DataFrame({"cell_id": ["a", "b", "c"], "framework": "torch", "engine": "eager", "status": "ok",
                        "distributed.world_size": ["1.0", "2.0", "2.0"], "versions.torch": "2.0",
                        "threads.intra_op": "1", "device_model": "x86_64", "git_commit": ["a" * 40, "a" * 40, "b" * 40],
                        "git_dirty": ["False", "False", "True"]})
    table = environment(Run(pd.DataFrame(), pd.DataFrame(), env))
    assert "1; 2" in table and "2.0" in table and "1.0" not in table
    assert r"x86\char95" in table and r"threads.intra\char95" in table
    git = git_values(env)
    assert git["env/git-commits"] == "two commits: aaaaaaaaaaaa (two cells) and bbbbbbbbbbbb (one cell)"
    assert git["env/git-state"] == "with uncommitted changes in 1 of 3 cells"
    assert git_values(env.iloc[:2])["env/git-commits"] == "commit aaaaaaaaaaaa"
    assert git_values(env.iloc[:2])["env/git-state"] == "clean"
    cells = pd.DataFrame({"device": "cpu", "devices": [1, 1, 2], "study": ["kernel", "scaling", "scaling"]})
    assert device_words(cells) == r"one CPU device and, in the \texttt{scaling} study, two"
    assert device_words(cells.iloc[:2]) == "one CPU device"


def test_intervals_print_distinct_ends_and_captions_name_their_estimate_and_margin():
    """'0.15 [0.15, 0.15]' gets the digits that tell its ends apart; equal ends print once; a caption names the
    estimate its interval kind computes and only the margin its table uses."""
    from convbench.analysis.formatting import bracketed, estimate_phrase, margin_text
    from convbench.analysis.stats import MARGINS, Kind
    assert bracketed(0.85, 0.66, 1.10) == "0.85 [0.66, 1.10]"
    assert bracketed(0.152, 0.1496, 0.1547) == "0.152 [0.150, 0.155]"
    assert bracketed(0.28, 0.28, 0.28) == "0.28" and bracketed(-0.5, -0.61, 0.2) == "$-$0.50 [$-$0.61, 0.20]"
    assert estimate_phrase([Kind.LAUNCHES, Kind.LAUNCHES]) == "geometric mean of the per-launch ratios of medians"
    assert estimate_phrase([Kind.BOOTSTRAP]) == "ratio of the medians"
    assert margin_text(MARGINS, ("time",)) == r"5\,\% for time ratios"
    assert "accuracy" in margin_text(MARGINS)


def test_the_odd_launch_count_reads_without_a_zero():
    """'0 of 1020 launch medians were such odd launches' was a count sentence of a zero."""
    from convbench.analysis.overview.launches import odd_sentence
    assert odd_sentence(0, 1020) == "None of the 1020 launch medians was such an odd launch"
    assert odd_sentence(3, 1020) == "3 of the 1020 launch medians were such odd launches"


def test_a_scale_sweep_is_summarised_per_scale_and_a_graded_task_whole():
    """The accuracy table merged the tracking study's 15 runs at scales 7, 11 and 15 into one median labelled 5 seeds:
    a study that trained at several single scales names each scale; a graded task (several scales per image) and
    another study's single scale keep the data set's name."""
    from convbench.analysis.query import with_scales
    df = pd.DataFrame({"study": ["tracking"] * 3 + ["kernel", "learned"], "dataset": "planted",
                       "planted_scale": [7.0, 11.0, 15.0, 13.0, 11.0], "planted_scales": ["7", "11", "15", "5 9 13", "11"]})
    assert with_scales(df)["dataset"].tolist() == ["planted, scale 7", "planted, scale 11", "planted, scale 15",
                                                   "planted", "planted"]

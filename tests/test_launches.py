"""A timed cell in several independent launches: one record holding every launch's summary and raw samples."""
import json
import re

import numpy as np
import pytest
import yaml
from conftest import new_record

from convbench import config
from convbench.analysis.query import launch_medians
from convbench.analysis.records import parse
from convbench.analysis.tidy import samples, tidy
from convbench.launches import merge
from convbench.run import run_group

with open("config/config.yaml") as f:
    DEFAULT = yaml.safe_load(f)


def speed_cell(**speed):
    tiny = {**{k: v for k, v in DEFAULT.items() if k != "scaling"}, "frameworks": ["torch"],
            "speed": {**DEFAULT["speed"], "batch_size": 8, "warmup": 1, "min_repeats": 3, "max_repeats": 3,
                      "min_seconds": 0, "layers": False, **speed},
            "architectures": {"small": {"blocks": [{"width": 8}]}},
            "studies": {"tiny": {"architectures": ["small"], "tasks": ["speed"]}}}
    [cell] = config.check(tiny)
    return cell


def launch_record(cell, medians: dict[str, float], launch: int) -> dict:
    def summary(m):
        return {"median": m, "iqr": 0.1 * m, "cv": 0.05, "n": 3, "noisy": False, "samples": [0.9 * m, m, 1.1 * m]}
    return new_record(cell, process={"launch": launch}, wall_s=1.0,
                      timings={"phase_method": "direct", "first_step": 0.5, "phase_overhead": 1.0 + launch / 100,
                               "phases": {p: summary(m) for p, m in medians.items() if p != "step"},
                               "step": summary(medians["step"])})


def test_launches_merge_into_one_record_with_every_launchs_samples():
    cell = speed_cell()
    launches = [launch_record(cell, {"forward": f, "step": 3 * f}, i) for i, f in enumerate([1.0, 1.2, 1.1], 1)]
    merged = merge(cell, launches)
    forward = merged["timings"]["phases"]["forward"]
    assert forward["median"] == pytest.approx(1.1) and forward["n"] == 9  # median of the launch medians
    assert forward["launch_medians"] == [1.0, 1.2, 1.1]
    assert forward["launch_cv"] == pytest.approx(np.std([1.0, 1.2, 1.1], ddof=1) / 1.1)
    assert forward["samples"][:3] == [0.9, 1.0, 1.1] and len(forward["samples"]) == 9
    assert [x["launch"] for x in merged["timings"]["launches"]] == [1, 2, 3]
    assert merged["timings"]["launches"][1]["phases"]["forward"]["samples"] == pytest.approx([1.08, 1.2, 1.32])
    assert merged["timings"]["phase_overhead"] == pytest.approx(1.02) and merged["wall_s"] == 3.0
    # the analysis reads the merged record as it read a single launch's, and publishes the launch level too
    record = parse(json.loads(json.dumps(merged)))
    rows = tidy([record])
    time = rows[(rows["metric"] == "time") & (rows["phase"] == "forward")]
    assert time["value"].tolist() == [pytest.approx(1.1)]
    per_launch = launch_medians(rows, "forward")
    assert per_launch.to_dict() == {1: 1.0, 2: 1.2, 3: 1.1}
    cv = rows[(rows["metric"] == "launch_cv") & (rows["phase"] == "forward")]["value"]
    assert cv.tolist() == [pytest.approx(forward["launch_cv"])]
    raw = samples([record])
    assert sorted(raw[raw["phase"] == "forward"]["launch"].value_counts().to_dict().items()) == [(1, 3), (2, 3), (3, 3)]


def test_a_baseline_merges_over_the_launches_as_the_step_does():
    """A scaling cell's no-communication baseline is the median over its launches, phase by phase, in a merged record
    and in a record merged before this rule (which kept the first launch's: a one-device TensorFlow cell, whose
    baseline is its own step, read an efficiency of 1.22 against the median step)."""
    cell = speed_cell()
    launches = []
    for i, f in enumerate([1.4, 1.0, 1.1], 1):
        rec = launch_record(cell, {"forward": f, "step": 3 * f}, i)
        rec["timings"]["baseline"] = {"phases": dict(rec["timings"]["phases"]), "step": rec["timings"]["step"]}
        launches.append(rec)
    merged = merge(cell, launches)
    assert merged["timings"]["baseline"]["step"]["median"] == pytest.approx(3.3)
    assert merged["timings"]["baseline"]["phases"]["forward"]["launch_medians"] == [1.4, 1.0, 1.1]
    old = json.loads(json.dumps(merged))
    old["timings"]["baseline"] = launches[0]["timings"]["baseline"]  # as records merged before kept it
    for record in (merged, old):
        timings = parse(json.loads(json.dumps(record))).timings
        assert timings.baseline["step"]["median"] == pytest.approx(3.3) == timings.step.median


def test_a_failed_or_missing_launch_fails_the_merged_record():
    cell = speed_cell()
    ok = launch_record(cell, {"forward": 1.0, "step": 3.0}, 1)
    failed = {**launch_record(cell, {"forward": 1.0, "step": 3.0}, 2), "status": "failed", "error": "boom"}
    assert merge(cell, [ok, failed])["status"] == "failed" and "launch 2 of 2: boom" in merge(cell, [ok, failed])["error"]
    lost = merge(cell, [ok, None], {2: "launch 2 exited with status -9"})
    assert lost["status"] == "failed" and "status -9" in lost["error"] and lost["cell_id"] == cell.id


def test_a_group_runs_in_separate_launches_and_a_rerun_keeps_finished_launches(tmp_path):
    cell = speed_cell(launches=2)
    out, stage = tmp_path / "records", tmp_path / "records.partial"
    run_group([cell], out, log=lambda _: None)
    record = json.loads((out / f"{cell.id}.json").read_text())
    assert record["status"] == "ok", record.get("error")
    launches = record["timings"]["launches"]
    assert [x["launch"] for x in launches] == [1, 2] and [p["launch"] for p in record["process"]["launches"]] == [1, 2]
    assert record["timings"]["step"]["n"] == 6 and not stage.exists()
    # every launch set glibc's malloc thresholds before importing its framework (timing.steady_allocator)
    assert all(p["allocator"].startswith("glibc mallopt") for p in record["process"]["launches"])
    # a job killed after its first launch: the rerun takes that launch's record and runs only the second
    first = stage / "launch-1" / f"{cell.id}.json"
    first.parent.mkdir(parents=True)
    first.write_text(json.dumps({**record, "timings": launches[0], "process": record["process"]["launches"][0]}))
    (out / f"{cell.id}.json").unlink()
    run_group([cell], out, log=lambda _: None)
    again = json.loads((out / f"{cell.id}.json").read_text())
    assert again["timings"]["launches"][0]["phases"] == launches[0]["phases"]
    assert again["timings"]["launches"][1]["phases"] != launches[1]["phases"]


def test_the_groups_of_one_job_interleave_their_launches_each_its_own_count(tmp_path):
    """Launch 1 of every group, then launch 2 of the groups that take two: the order run_launches starts them in."""
    from convbench.launches import run_launches

    cell = speed_cell(launches=2)
    started = []

    def launch_one(cells, out, launch, log):
        started.append((out.parent.name, launch))
        (out / f"{cell.id}.json").parent.mkdir(parents=True)
        (out / f"{cell.id}.json").write_text(json.dumps(launch_record(cell, {"forward": 1.0, "step": 3.0}, launch)))
        return "ok"

    run_launches([([cell], tmp_path / "torch", 2), ([cell], tmp_path / "tensorflow", 2), ([cell], tmp_path / "one", 1)],
                 log=lambda _: None, launch_one=launch_one)
    assert started == [("torch", 1), ("tensorflow", 1), ("one", 1), ("torch", 2), ("tensorflow", 2)]
    for group, n in (("torch", 2), ("tensorflow", 2), ("one", 1)):
        merged = json.loads((tmp_path / group / f"{cell.id}.json").read_text())
        assert merged["status"] == "ok" and [x["launch"] for x in merged["timings"]["launches"]] == list(range(1, n + 1))


def test_groups_that_share_one_out_folder_all_run(tmp_path):
    """A group in launches and one run in this process, both into one --out (and one stage): both publish, and the
    stage goes only after both have."""
    from convbench.run import run_groups

    two, one = speed_cell(launches=2), speed_cell(launches=1, batch_size=4)
    out = tmp_path / "records"
    run_groups([([two], out, tmp_path / "stage"), ([one], out, tmp_path / "stage")], log=lambda _: None)
    records = {p.name: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert set(records) == {f"{two.id}.json", f"{one.id}.json"}
    assert all(r["status"] == "ok" for r in records.values())
    assert len(records[f"{two.id}.json"]["timings"]["launches"]) == 2 and not (tmp_path / "stage").exists()


@pytest.mark.slow
def test_one_run_of_both_frameworks_writes_a_folder_per_framework_and_interleaves(tmp_path):
    """`convbench run --under DIR` with the speed cells of both frameworks (the measuring job of a task): a folder
    per framework under DIR, no staging left behind, and the launches in the order torch, TF, torch, TF."""
    import subprocess
    import sys

    tiny = {**{k: v for k, v in DEFAULT.items() if k != "scaling"}, "frameworks": ["torch", "tensorflow"],
            "speed": {**DEFAULT["speed"], "batch_size": 8, "warmup": 1, "min_repeats": 3, "max_repeats": 3,
                      "min_seconds": 0, "layers": False, "launches": 2},
            "architectures": {"small": {"blocks": [{"width": 8}]}},
            "studies": {"tiny": {"architectures": ["small"], "tasks": ["speed"]}}}
    cells = [c for c in config.check(tiny) if c.task == "speed"]
    assert {c.framework for c in cells} == {"torch", "tensorflow"}
    out = tmp_path / "records" / "speed"
    result = subprocess.run([sys.executable, "-m", "convbench", "run", "--cells-json",
                             json.dumps([c.to_dict() for c in cells]), "--under", str(out)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["tensorflow", "torch"]
    assert not (tmp_path / "records" / "speed.partial").exists()
    for framework in ("torch", "tensorflow"):
        [path] = (out / framework).glob("*.json")
        record = json.loads(path.read_text())
        assert record["status"] == "ok", record.get("error")
        assert [p["launch"] for p in record["process"]["launches"]] == [1, 2]
    order = re.findall(r"^launch (\d) of 2, (speed/\w+):$", result.stdout, flags=re.MULTILINE)
    assert order == [("1", "speed/torch"), ("1", "speed/tensorflow"), ("2", "speed/torch"), ("2", "speed/tensorflow")]

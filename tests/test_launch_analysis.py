"""The analysis of timed cells run in several launches: intervals from launch-level medians paired by launch, the
between-launch CV, a cell timed by two studies checked against itself, derived phases the data cannot resolve."""
import copy
import zlib

import numpy as np
import pandas as pd
import pytest
from builders.engines import engine_record, engine_records, published, summary

from convbench.analysis.engines import claim, values
from convbench.analysis.overview import launches as overview_launches
from convbench.analysis.stats import Kind, launch_ratio, resolved, t_quantile, time_interval
from convbench.launches import merge

DRIFT = (1.0, 1.04, 0.97)  # what moves a whole launch: every cell of it alike


def launched(record, drift=DRIFT):
    """The record as three launches of it: each launch's samples scaled by the launch's drift and a noise of the
    cell's own (1 %), merged as convbench.launches merges them."""
    if record["status"] != "ok":
        return record
    rng = np.random.default_rng(zlib.crc32(record["cell_id"].encode()))
    runs = []
    for i, d in enumerate(drift, 1):
        f = d * (1 + 0.01 * rng.standard_normal())
        t = copy.deepcopy(record["timings"])
        t["phases"] = {p: summary(np.array(s["samples"]) * f) for p, s in t["phases"].items()}
        if "step" in t:
            t["step"] = summary(np.array(t["step"]["samples"]) * f)
        runs.append({**record, "timings": t, "process": {**record["process"], "launch": i}})
    return merge(None, runs)


def test_launch_ratio_pairs_by_launch_and_uses_a_t_interval_over_launches():
    a = pd.Series({1: 2.0, 2: 2.2, 3: 1.8})
    b = pd.Series({1: 1.0, 2: 1.1, 3: 0.9})
    r, lo, hi, n = launch_ratio(a, b)  # the drift between launches cancels in each launch's ratio
    assert (r, lo, hi, n) == (pytest.approx(2.0), pytest.approx(2.0), pytest.approx(2.0), 3)
    b = pd.Series({1: 1.0, 2: 1.0, 3: 1.0, 4: 7.0})  # launch 4 of b only: not paired, left out
    logs = np.log([2.0, 2.2, 1.8])
    half = t_quantile(3) * logs.std(ddof=1) / np.sqrt(3)
    r, lo, hi, n = launch_ratio(a, b)
    assert n == 3 and r == pytest.approx(np.exp(logs.mean())) and lo == pytest.approx(np.exp(logs.mean() - half))
    assert hi == pytest.approx(np.exp(logs.mean() + half))
    assert launch_ratio(a.iloc[:1], b.iloc[:1]) is None  # one launch: no interval over launches
    one = time_interval(a.iloc[:1], b.iloc[:1], [2.0, 2.1, 1.9], [1.0, 1.05, 0.95])
    assert one[-1] == "bootstrap" and one[3] == 6  # what a single launch falls back to: its raw samples
    assert time_interval(a, b, [], [])[-1] == "launches"


def test_a_derived_phase_is_resolved_only_when_clear_of_zero():
    assert resolved([1.0, 1.1, 0.9], [0.9, 1.0, 1.2])
    assert not resolved([1.0, 1.1, 0.9], [0.9, -0.01, 1.2])  # a sample below zero
    assert not resolved([0.001, 0.02, 0.0005], [0.001, 0.02, 0.0005])  # the t interval over launches reaches zero
    assert resolved([0.5], [0.4, 0.5])  # one launch: the samples decide


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    records = engine_records(backward={"tensorflow-xla": 0.0})  # XLA's derived backward: noise around zero
    records.append(engine_record("tensorflow", "eager", "k5", study="kernel"))  # timed by two studies
    return published(tmp_path_factory.mktemp("launched"), [launched(r) for r in records])


def test_claim_intervals_come_from_the_launches(run):
    c = claim.claims(run)
    ok = c[c["status"] == "ok"]
    assert len(ok) and ok["kind"].isin([Kind.LAUNCHES]).all() and (ok["n"] == 3).all()
    v = claim.claim_values(run)
    assert v["engines/claim/launches"] == "1" and v["engines/claim/launches-min"] == "3"


def test_an_unresolved_derived_backward_is_reported_as_not_resolved(run):
    found = values.unresolved(run)
    xla = found[found["setup"] == "tensorflow-xla"]
    assert set(xla["phase"]) >= {"backward"}
    assert not ((found["setup"] == "tensorflow-function") & (found["phase"] == "backward")).any()
    v = values.derived_values(run)
    assert v["engines/derived/any-unresolved"] == "1" and v["engines/derived/unresolved"] == str(len(found))
    times = values.unresolved_times(run, {"engines/tensorflow-xla/k3/backward-ms": "0.01",
                                          "engines/tensorflow-function/k3/backward-ms": "2.0"})
    assert times == {"engines/tensorflow-xla/k3/backward-ms": "not resolved",
                     "engines/tensorflow-function/k3/backward-ms": "2.0"}
    c = claim.claims(run)
    assert (c[c["engine_b"] == "xla"]["status"].isin(["not resolved", "failed"])).all()
    assert claim.claim_values(run)["engines/claim/any-unresolved"] == "1"
    assert not any(v.reference == "tensorflow-xla" for v in claim.claim_verdicts(run))


def test_a_cell_timed_by_two_studies_is_checked_against_itself(run):
    shared = values.shared_cells(run)
    assert set(shared["cell_id"]) == {"engines_k5_tensorflow-eager_cpu1-none_b64_s0_speed"}
    assert set(shared["other_id"]) == {"kernel_k5_tensorflow-eager_cpu1-none_b64_s0_speed"}
    assert list(shared["phase"]) == ["forward", "backward", "step"] and shared["agree"].all()
    v = values.shared_values(run)
    assert (v["engines/shared/cells"], v["engines/shared/phases"], v["engines/shared/agree"]) == ("1", "3", "3")


def test_between_launch_cvs_are_published_per_cell_and_phase(run):
    v = overview_launches.values(run.tidy)
    assert v["speed/launches"] == "3" and v["speed/by-launch"] == "1"
    cvs = overview_launches.launch_cvs(run.tidy)
    speed = cvs[cvs["task"] == "speed"]["value"]  # the text quotes the speed cells' (the table's); layers' apart
    assert float(v["speed/launch-cv-max"]) == pytest.approx(100 * speed.max(), abs=0.05)
    assert not ((cvs["phase_method"] == "derived") & (cvs["phase"] == "backward")).any()
    assert 2 < float(v["speed/launch-cv-median"]) < 6  # the drift of DRIFT and 1 % of each cell's own
    table = overview_launches.table(run)
    assert "tab:launch-cv" in table and "TensorFlow xla" in table and table.count(" -- ") >= 2


def test_one_odd_launch_leaves_the_ratios_interval_but_two_stay():
    """A single launch 3x off its cell's other four is a transient of the machine: the paired ratio leaves it out. Two
    launches 30 % off are the cell's real spread (two groups), and three launches are too few to call one odd."""
    from convbench.analysis.stats import launch_ratio, odd_launch

    launches = range(1, 6)
    a = pd.Series([1.0, 1.01, 0.99, 3.0, 1.0], index=launches)
    b = pd.Series([2.0, 2.0, 2.0, 2.1, 2.0], index=launches)
    assert odd_launch(a) == 4 and odd_launch(b) is None
    r, lo, hi, n = launch_ratio(a, b)
    assert n == 4 and r == pytest.approx(0.5, rel=1e-3) and lo < 0.5 < hi < 0.52
    bimodal = pd.Series([1.0, 1.3, 1.0, 1.3, 1.0], index=launches)
    assert odd_launch(bimodal) is None and launch_ratio(bimodal, b)[3] == 5
    assert odd_launch(pd.Series([1.0, 1.0, 3.0])) is None


def test_unpaired_ratio_takes_welchs_interval_over_two_runs_launches():
    from convbench.analysis.stats import unpaired_ratio

    a = pd.Series({1: 2.0, 2: 2.2, 3: 1.8})
    b = pd.Series({7: 1.0, 8: 1.0, 9: 1.0})  # another run's launches: nothing to pair with
    r, lo, hi, n = unpaired_ratio(a, b)
    assert r == pytest.approx(np.exp(np.log([2.0, 2.2, 1.8]).mean())) and lo < r < hi and n == 6
    assert lo < 2.0 * 0.95 and hi > 2.0 * 1.05  # a's spread between launches is in it, unlike a paired ratio's
    assert unpaired_ratio(a, b.iloc[:1]) is None and unpaired_ratio(a, b * 0) is None


def test_launches_that_took_turns_are_told_from_launches_that_did_not():
    """overview.launches.interleaved reads the launch_start rows: torch 1, tf 1, torch 2, tf 2 took turns; torch 1,
    torch 2, tf 1, tf 2 did not; one framework alone never did."""
    def rows(order):
        return pd.DataFrame([{"task": "speed", "framework": fw, "launch": launch, "metric": "launch_start",
                              "status": "ok", "value": 100.0 * t + cell, "cell_id": f"{fw}-{cell}", "phase": None,
                              "phase_method": "direct"}
                             for t, (fw, launch) in enumerate(order) for cell in (0, 1)])
    turns = [("torch", 1), ("tensorflow", 1), ("torch", 2), ("tensorflow", 2)]
    apart = [("torch", 1), ("torch", 2), ("tensorflow", 1), ("tensorflow", 2)]
    assert overview_launches.interleaved(rows(turns))
    assert not overview_launches.interleaved(rows(apart))
    assert not overview_launches.interleaved(rows([("torch", 1), ("torch", 2)]))
    assert overview_launches.values(rows(turns))["speed/interleaved"] == "1"

import time

import pytest

from convbench.timing import Measurement, Protocol, time_phases, time_step


def test_measurement_summaries():
    m = Measurement([0.1, 0.2, 0.3, 0.4, 10.0])
    assert m.median == pytest.approx(0.3)
    assert m.iqr == pytest.approx(0.4 - 0.2)
    assert m.summary()["samples"] == [0.1, 0.2, 0.3, 0.4, 10.0]
    assert m.summary()["n"] == 5


def test_phases_are_timed_apart_and_bracketed_by_syncs():
    events = []
    phases = {
        "forward": lambda: (events.append("forward"), time.sleep(0.002)),
        "backward": lambda: (events.append("backward"), time.sleep(0.004)),
    }
    protocol = Protocol(warmup=2, min_repeats=3, max_repeats=3, max_seconds=60)
    result = time_phases(phases, lambda: events.append("sync"), protocol)
    assert len(result["forward"].samples) == 3  # warm-up steps are not recorded
    assert events[:6] == ["sync", "forward", "sync", "sync", "backward", "sync"]
    assert events.count("forward") == 5
    assert 0.002 <= result["forward"].median < result["backward"].median
    assert result["total"].median == pytest.approx(result["forward"].median + result["backward"].median, rel=0.2)


def test_repeats_stop_at_the_time_budget_but_not_below_the_minimum():
    protocol = Protocol(warmup=0, min_repeats=4, max_repeats=1000, max_seconds=0.001)
    m = time_step(lambda: time.sleep(0.002), lambda: None, protocol)
    assert len(m.samples) == 4
    protocol = Protocol(warmup=0, min_repeats=1, max_repeats=7, max_seconds=60, max_iqr_ratio=0)
    assert len(time_step(lambda: None, lambda: None, protocol).samples) == 7


def test_repeats_stop_once_the_median_is_stable_and_noise_is_flagged():
    protocol = Protocol(warmup=0, min_repeats=6, max_repeats=100, max_seconds=60, max_iqr_ratio=0.5)
    steady = time_step(lambda: time.sleep(0.001), lambda: None, protocol)
    assert len(steady.samples) == 6 and not steady.summary(0.5)["noisy"]
    durations = iter([0.001, 0.008] * 50)  # alternating: IQR/median stays far above 0.5
    noisy = time_step(lambda: time.sleep(next(durations)), lambda: None, protocol)
    assert len(noisy.samples) == 100 and noisy.summary(0.5)["noisy"]

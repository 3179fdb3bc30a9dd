import time

import pytest

from convbench import timing
from convbench.timing import Measurement, Protocol, block_size, derive_phases, time_phases, time_step


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
    assert events.count("forward") == 2 + 1 + 3  # warm-up, the block-size probe, samples
    assert 0.002 <= result["forward"].median < result["backward"].median
    assert result["total"].median == pytest.approx(result["forward"].median + result["backward"].median, rel=0.2)


def test_repeats_stop_at_the_time_budget_but_not_below_the_minimum():
    protocol = Protocol(warmup=0, min_repeats=4, max_repeats=1000, max_seconds=0.001)
    m = time_step(lambda: time.sleep(0.002), lambda: None, protocol)
    assert len(m.samples) == 4 and m.block == 1
    protocol = Protocol(warmup=0, min_repeats=7, max_repeats=7, max_seconds=60, max_iqr_ratio=0)
    assert len(time_step(lambda: None, lambda: None, protocol).samples) == 7  # no minimum time: a fixed count


def test_a_blocked_step_gives_the_time_per_step_and_measures_at_least_min_seconds():
    protocol = Protocol(warmup=1, min_repeats=5, max_repeats=20, min_seconds=0.2, max_seconds=60)
    t0 = time.perf_counter()
    m = time_step(lambda: time.sleep(0.002), lambda: None, protocol)
    assert time.perf_counter() - t0 >= 0.2
    assert 0.002 <= m.median < 0.0026  # per step, not per block
    # blocks of 2 ms steps reach min_seconds / max_repeats = 10 ms at 8 steps (4 are 8.x ms)
    assert m.block == 8 and 5 <= len(m.samples) <= 20
    assert len(m.samples) * m.block * m.median >= 0.2 * 0.95


def test_block_sizes_follow_timers_rule_within_the_sample_counts():
    linear = lambda n: n * 0.001  # noqa: E731  a 1 ms step
    quick = Protocol(min_repeats=10, max_repeats=100, min_seconds=1.0)
    assert block_size(linear, 0.0, quick) == 16  # 16 ms: at least 1 s / 100 samples
    assert block_size(linear, 1e-6, quick) == 16  # timing 1 us is 1e-4 of 10 ms: negligible already
    assert block_size(linear, 1e-5, quick) == 128  # needs 100 ms blocks, which 1 s / 10 samples allows
    assert block_size(linear, 1e-3, quick) == 128  # never fewer than min_repeats blocks in min_seconds
    assert block_size(linear, 1e-3, Protocol(min_seconds=0.0)) == 1  # no minimum time: single steps


def test_a_block_runs_back_to_back_between_two_synchronisations():
    events = []
    protocol = Protocol(warmup=0, min_repeats=3, max_repeats=3, min_seconds=0.0)
    time_step(lambda: events.append("step"), lambda: events.append("sync"), protocol)
    timed = events[events.index("step") - 1:]  # after the empty timings that measure the clock's own overhead
    assert timed == ["sync", "step", "sync"] * (1 + 3)  # the block-size probe, then three samples

    blocks = []
    clock = lambda body, n: (blocks.append(n), [body() for _ in range(n)], n * 0.003)[-1]  # noqa: E731
    m = time_step(lambda: None, lambda: None, Protocol(warmup=0, min_repeats=5, max_repeats=10, min_seconds=0.3), clock)
    assert m.median == pytest.approx(0.003) and m.block == 16  # 48 ms >= 0.3 s / 10; the device clock's time
    assert blocks[:5] == [0] * 5 and set(blocks[5:]) <= {1, 2, 4, 8, 16}


def test_a_noisy_measurement_is_taken_again_a_bounded_number_of_times_then_flagged():
    protocol = Protocol(warmup=0, min_repeats=6, max_repeats=6, max_seconds=60, max_iqr_ratio=0.5, retries=2)
    steady = time_step(lambda: time.sleep(0.001), lambda: None, protocol)
    assert len(steady.samples) == 6 and steady.attempts == 1 and not steady.summary(0.5)["noisy"]
    durations = iter([0.001, 0.008] * 50)  # alternating: IQR/median stays far above 0.5
    noisy = time_step(lambda: time.sleep(next(durations)), lambda: None, protocol)
    assert noisy.attempts == 3 and len(noisy.samples) == 6 and noisy.summary(0.5)["noisy"]
    phases = time_phases({"a": lambda: time.sleep(next(durations))}, lambda: None, protocol)
    assert phases["a"].attempts == phases["total"].attempts == 3


def test_derived_phases_are_differences_per_repeat():
    programs = {"forward": Measurement([1.0, 1.0]), "forward_backward": Measurement([3.0, 2.5]),
                "step": Measurement([3.5, 3.4])}
    derived = derive_phases(programs)
    assert derived["backward"].samples == [2.0, 1.5] and derived["optimizer"].samples == pytest.approx([0.5, 0.9])


def test_the_allocator_starts_where_a_long_running_process_settles():
    """glibc's mallopt takes both thresholds; the record says so (None where libc is not glibc)."""
    import platform

    said = timing.steady_allocator()
    if platform.libc_ver()[0] == "glibc":
        assert said == "glibc mallopt: mmap threshold 32 MiB, trim threshold 64 MiB"
    else:
        assert said is None

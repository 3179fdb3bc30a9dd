"""The timing harness: whole steps timed in blocks of back-to-back steps, phases of a step timed one by one, raw
samples kept.

The shape follows torch.utils.benchmark: a timer runs the code, a Measurement holds the raw samples and summarises
them. A whole step is timed as Timer.blocked_autorange does: a block of steps runs back to back between two
synchronisations, as a training loop runs them (the device overlaps one step's launches with the previous one's
work), and the block is long enough that the synchronisations and clock reads cost nothing beside it. The harness
adds what Timer lacks: a training step split into phases, each bracketed by a synchronisation (which costs what a
training loop overlaps: phase_overhead says how much), and one implementation for every framework (a framework
supplies its callables, `sync`, and optionally a `clock` that times a block on the device itself, as CUDA events do).

No optional stopping: a measurement takes at least min_repeats samples and min_seconds of measuring, whatever its
spread; a measurement whose IQR/median exceeds max_iqr_ratio is taken again from scratch, at most `retries` times,
and then flagged noisy.
"""
from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass, field, fields, replace
from typing import Callable

import numpy as np

PHASES = ("forward", "backward", "optimizer")
OVERHEAD_SHARE = 1e-4  # as Timer: a block long enough that timing it adds at most this share

# A clock times `n` back-to-back calls of a body between two synchronisations, in seconds.
Clock = Callable[[Callable[[], None], int], float]

# glibc's malloc hands a freed block above its mmap threshold back to the OS (and trims the heap's free top above the
# trim threshold), so the next step maps its memory again, page fault by page fault. The threshold rises on its own
# only once a block that large is freed, so a process's step times hung on what it had allocated before: a 7x7
# convolution 32->64 on 8x8 maps took 2.2-2.5 ms in a fresh process and 1.44 ms after a 16 MB GEMM had been freed, and
# launches that skipped that GEMM ran PyTorch steps up to 2x slower. Every measuring or training process starts where
# a long-running one settles: the mmap threshold at glibc's dynamic maximum (32 MiB on 64-bit), the trim at twice it.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
MMAP_THRESHOLD = 32 * 2**20


def steady_allocator() -> str | None:
    """Set glibc's malloc thresholds (above) in this process, before any framework allocates; what was set, for the
    record, or None where libc is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        done = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and libc.mallopt(M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD)
    except (OSError, AttributeError):
        return None
    return f"glibc mallopt: mmap threshold {MMAP_THRESHOLD >> 20} MiB, trim threshold {2 * MMAP_THRESHOLD >> 20} MiB" \
        if done else None


def host_clock(sync: Callable[[], None]) -> Clock:
    """Synchronise, read the host clock, run the block, synchronise, read it again: Timer's timer on a GPU."""
    def timed(body: Callable[[], None], n: int) -> float:
        sync()
        t0 = time.perf_counter()
        for _ in range(n):
            body()
        sync()
        return time.perf_counter() - t0
    return timed


@dataclass
class Measurement:
    """Raw samples in seconds (one per block: the block's time over its steps) and their summary."""

    samples: list[float] = field(default_factory=list)
    block: int = 1  # steps per sample
    attempts: int = 1  # measurements taken: more than one when an earlier one was noisy

    @property
    def median(self) -> float:
        return float(np.median(self.samples))

    @property
    def iqr(self) -> float:
        q1, q3 = np.percentile(self.samples, [25, 75])
        return float(q3 - q1)

    @property
    def cv(self) -> float:
        """Coefficient of variation (std / mean): flags noisy cells."""
        return float(np.std(self.samples) / np.mean(self.samples))

    @property
    def spread(self) -> float:
        """IQR relative to the median: what the re-measuring and the noisy flag look at."""
        return self.iqr / self.median if self.median > 0 else float("inf")

    def summary(self, max_spread: float = float("inf")) -> dict:
        return {"median": self.median, "iqr": self.iqr, "cv": self.cv, "n": len(self.samples),
                "noisy": self.spread > max_spread, "block": self.block, "attempts": self.attempts,
                "samples": self.samples}


@dataclass(frozen=True)
class Protocol:
    """How long and how often to measure. A measurement runs until it has min_repeats samples and min_seconds have
    passed (or max_seconds, the cap for very slow steps, once min_repeats are in); blocks of several steps keep the
    number of samples near max_repeats at most. Noisy (IQR / median above max_iqr_ratio): measured again, at most
    `retries` times. With min_seconds 0 and no retries, a measurement is exactly min_repeats single steps on every
    clock, which processes that must stay in step (ranks of a collective) rely on."""

    warmup: int = 3  # untimed steps first: allocator, autotuning, lazy initialisation
    min_repeats: int = 5
    max_repeats: int = 50
    max_seconds: float = 5.0
    max_iqr_ratio: float = 0.05  # also the threshold above which a result is flagged noisy
    min_seconds: float = 0.0
    retries: int = 0


# What a cell's settings may give of its timing loops: the protocol's fields, named once (here).
PROTOCOL_KEYS = tuple(f.name for f in fields(Protocol))
# A loop whose length is its count alone: min_seconds and retries, left at 0, would let it run on.
COUNTED_KEYS = tuple(k for k in PROTOCOL_KEYS if k not in ("min_seconds", "retries"))


def protocol(settings: dict) -> Protocol:
    """The protocol a cell's settings give; fields they leave out keep Protocol's defaults."""
    return Protocol(**{k: settings[k] for k in PROTOCOL_KEYS if k in settings})


def fixed(settings: dict) -> Protocol:
    """The settings' protocol with exactly max_repeats repeats. The adaptive stop reads each process's own clock, so
    processes (ranks, workers) would leave a timing loop after different numbers of steps and the collectives of the
    others would wait for ever (or until the timeout); a fixed count keeps them in step."""
    given = protocol(settings)
    return replace(given, min_repeats=given.max_repeats, max_seconds=float("inf"), min_seconds=0.0, retries=0)


def block_size(timed: Callable[[int], float], overhead: float, protocol: Protocol) -> int:
    """Steps per sample, doubling from one as Timer's _estimate_block_size does (its runs are also a warm-up): until
    a block lasts min_seconds / max_repeats and its timing overhead is at most OVERHEAD_SHARE of it, but never so long
    that fewer than min_repeats blocks would fit in min_seconds."""
    n = 1
    while True:
        t = timed(n)
        if t >= protocol.min_seconds / protocol.min_repeats:
            return n
        if t >= protocol.min_seconds / protocol.max_repeats and overhead <= OVERHEAD_SHARE * t:
            return n
        n *= 2


def _sample(timed: Callable[[int], dict[str, float]], n: int, protocol: Protocol) -> dict[str, Measurement]:
    """Blocks of n steps until min_repeats samples and min_seconds (or, past min_repeats, max_seconds)."""
    results: dict[str, Measurement] = {}
    start = time.perf_counter()
    while True:
        for name, seconds in timed(n).items():
            results.setdefault(name, Measurement(block=n)).samples.append(seconds / n)
        count, elapsed = len(next(iter(results.values())).samples), time.perf_counter() - start
        if count >= protocol.min_repeats and (elapsed >= protocol.min_seconds or elapsed >= protocol.max_seconds):
            return results


def _measure(timed: Callable[[int], dict[str, float]], n: int, protocol: Protocol, watched: str) -> dict[str, Measurement]:
    """Measure; while `watched` is noisy and retries are left, measure again from scratch. The last one is kept."""
    for attempt in range(1, protocol.retries + 2):
        results = _sample(timed, n, protocol)
        if results[watched].spread <= protocol.max_iqr_ratio:
            break
    for m in results.values():
        m.attempts = attempt
    return results


def time_step(step: Callable[[], None], sync: Callable[[], None], protocol: Protocol,
              clock: Clock | None = None) -> Measurement:
    """Time a whole step as a training loop runs it: blocks of back-to-back steps between two synchronisations, each
    sample the block's time over its steps. `clock` times a block on the device (CUDA events); default: host_clock."""
    clock = clock or host_clock(sync)
    for _ in range(protocol.warmup):
        step()
    overhead = float(np.median([clock(lambda: None, 0) for _ in range(5)]))  # two syncs and the clock alone
    n = block_size(lambda k: clock(step, k), overhead, protocol)
    return _measure(lambda k: {"step": clock(step, k)}, n, protocol, "step")["step"]


def time_phases(phases: dict[str, Callable[[], None]], sync: Callable[[], None], protocol: Protocol) -> dict[str, Measurement]:
    """Time each phase of a step separately (synchronised before and after), plus their sum "total". A sample is a
    phase's time summed over a block of steps, over the block's steps; blocks as time_step's (the synchronisations
    are part of what is timed here, so they do not count as overhead)."""
    def timed(n: int) -> dict[str, float]:
        sums = dict.fromkeys([*phases, "total"], 0.0)
        for _ in range(n):
            for name, run in phases.items():
                sync()
                t0 = time.perf_counter()
                run()
                sync()
                elapsed = time.perf_counter() - t0
                sums[name] += elapsed
                sums["total"] += elapsed
        return sums

    for _ in range(protocol.warmup):
        timed(1)
    n = block_size(lambda k: timed(k)["total"], 0.0, protocol)
    return _measure(timed, n, protocol, "total")


def derive_phases(programs: dict[str, Measurement]) -> dict[str, Measurement]:
    """Phases from cumulative programs timed in the same repeats (graph engines cannot stop mid-step):
    backward = (forward + backward) - forward, optimizer = step - (forward + backward), per repeat."""
    forward, forward_backward, step = (programs[k].samples for k in ("forward", "forward_backward", "step"))
    keep = dict(block=programs["step"].block, attempts=programs["step"].attempts)
    return {
        "forward": Measurement(list(forward), **keep),
        "backward": Measurement([fb - f for f, fb in zip(forward, forward_backward)], **keep),
        "optimizer": Measurement([s - fb for fb, s in zip(forward_backward, step)], **keep),
        "total": Measurement(list(step), **keep),
    }


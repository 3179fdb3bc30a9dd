"""The timing harness: phases of a step timed one by one, and whole steps, with raw samples kept.

The shape follows torch.utils.benchmark: a timer runs the code, a Measurement holds
the raw samples and summarises them. The harness adds what Timer lacks: a training
step split into phases, each bracketed by a device synchronisation, and one
implementation for every framework (a framework supplies its callables and `sync`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

PHASES = ("forward", "backward", "optimizer")


@dataclass
class Measurement:
    """Raw samples in seconds and their summary (median, interquartile range)."""

    samples: list[float] = field(default_factory=list)

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
        """IQR relative to the median: what the adaptive protocol and the noisy flag look at."""
        return self.iqr / self.median if self.median > 0 else float("inf")

    def summary(self, max_spread: float = float("inf")) -> dict:
        return {"median": self.median, "iqr": self.iqr, "cv": self.cv, "n": len(self.samples),
                "noisy": self.spread > max_spread, "samples": self.samples}


@dataclass(frozen=True)
class Protocol:
    """Adaptive repeats, as torch.utils.benchmark's adaptive_autorange: stop once the median is
    stable (IQR / median below max_iqr_ratio) or a cap is reached, never below min_repeats."""

    warmup: int = 3  # untimed steps first: allocator, autotuning, lazy initialisation
    min_repeats: int = 5
    max_repeats: int = 50
    max_seconds: float = 5.0
    max_iqr_ratio: float = 0.05  # also the threshold above which a result is flagged noisy


def _repeat(protocol: Protocol, body: Callable[[], None], watched: Measurement) -> None:
    start = time.perf_counter()
    for i in range(protocol.max_repeats):
        body()
        if i + 1 < protocol.min_repeats:
            continue
        if watched.spread < protocol.max_iqr_ratio or time.perf_counter() - start > protocol.max_seconds:
            break


def time_phases(phases: dict[str, Callable[[], None]], sync: Callable[[], None], protocol: Protocol) -> dict[str, Measurement]:
    """Time each phase of a step separately (synchronised before and after), plus their sum "total"."""
    results = {name: Measurement() for name in [*phases, "total"]}

    def one_step(record: bool):
        total = 0.0
        for name, run in phases.items():
            sync()
            t0 = time.perf_counter()
            run()
            sync()
            elapsed = time.perf_counter() - t0
            total += elapsed
            if record:
                results[name].samples.append(elapsed)
        if record:
            results["total"].samples.append(total)

    for _ in range(protocol.warmup):
        one_step(record=False)
    _repeat(protocol, lambda: one_step(record=True), results["total"])
    return results


def derive_phases(programs: dict[str, Measurement]) -> dict[str, Measurement]:
    """Phases from cumulative programs timed in the same repeats (graph engines cannot stop mid-step):
    backward = (forward + backward) - forward, optimizer = step - (forward + backward), per repeat."""
    forward, forward_backward, step = (programs[k].samples for k in ("forward", "forward_backward", "step"))
    return {
        "forward": Measurement(list(forward)),
        "backward": Measurement([fb - f for f, fb in zip(forward, forward_backward)]),
        "optimizer": Measurement([s - fb for fb, s in zip(forward_backward, step)]),
        "total": Measurement(list(step)),
    }


def time_step(step: Callable[[], None], sync: Callable[[], None], protocol: Protocol) -> Measurement:
    """Time a whole step with no synchronisation inside it, as a training loop runs it."""
    result = Measurement()

    def one_step():
        sync()
        t0 = time.perf_counter()
        step()
        sync()
        result.samples.append(time.perf_counter() - t0)

    for _ in range(protocol.warmup):
        step()
    sync()
    _repeat(protocol, one_step, result)
    return result

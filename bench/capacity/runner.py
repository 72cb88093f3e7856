"""What every step shares: the machine's CPU sampled through it, and how a step ends badly (the steps
themselves run back to back against one stack: stackrun.py)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import psutil


class StepInterrupted(Exception):
    """Ctrl-C (or SIGTERM) during a step: the step is partial and is not judged."""


class StepFailed(Exception):
    """A step's run did not complete (stack or Locust failed); the message is one line."""


@dataclass
class CpuSampler:
    """All cores' busy share about once a second, in a thread (psutil, the machine as a whole)."""

    period_s: float = 1.0
    samples: list[tuple[float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _loop(self) -> None:
        psutil.cpu_percent(None)
        while not self._stop.wait(self.period_s):
            self.samples.append((time.time(), psutil.cpu_percent(None)))

    @contextlib.contextmanager
    def running(self) -> Iterator[CpuSampler]:
        """Sample while the block runs."""
        thread = threading.Thread(target=self._loop, name="cpu-sampler", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(5)

    def mean(self, t0: float, t1: float) -> float | None:
        """Mean busy % of the samples taken in [t0, t1]."""
        inside = [p for ts, p in self.samples if t0 <= ts <= t1]
        return sum(inside) / len(inside) if inside else None

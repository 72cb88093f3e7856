"""One step = one ordinary run: `offload-bench run`'s own run_once (stack, Locust, capture, job export,
analysis, validity) into <out>/<id>/steps/<run-id>/, then the step read and judged from that folder."""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import psutil
from rich.console import Console

from bench.capacity.measure import read_step, window_of
from bench.capacity.model import Step
from bench.capacity.verdict import judge
from bench.run.command import run_once
from bench.run.config import RunConfig


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


def run_step(
    base: RunConfig,
    mode: str,
    rate: float,
    percentile: str,
    offload_like: bool,
    workers: int,
    index: int,
    duration_s: float | None = None,
) -> Step:
    """Run mode at rate for one step through the ordinary run path; the judged step.

    Each step gets its own arrival seed (base seed + index): with one seed for all, a short step's Poisson
    arrivals stray from the asked rate the same way every time, and a bisection can stall on that bias.
    The run's progress and result table (for a person) go to the step's log, not under the search's progress.
    """
    update: dict[str, object] = {
        "modes": [mode],
        "arrival_rate": rate,
        "workers": workers,
        "seed": base.seed + index,
    }
    if duration_s is not None:
        update["duration_s"] = duration_s
    cfg = base.model_copy(update=update)
    log = io.StringIO()
    sampler = CpuSampler()
    # stdout too: a library that prints (Locust's own messages) does not land under the live progress
    with sampler.running(), contextlib.redirect_stdout(log):
        run_dir, code = run_once(cfg, [], Console(file=log, width=140, soft_wrap=True))
    (run_dir / "logs").mkdir(exist_ok=True)
    (run_dir / "logs" / "run-output.txt").write_text(log.getvalue())
    if code == 130:
        raise StepInterrupted(str(run_dir))
    if code != 0 or not (run_dir / "summary.json").exists():
        last = [line for line in log.getvalue().splitlines() if line.startswith("error:")]
        raise StepFailed(
            last[-1].removeprefix("error: ") if last else f"the run in {run_dir} did not complete"
        )
    step, limits = read_step(run_dir, mode, rate, percentile)
    window = window_of(run_dir, mode)
    cpu = sampler.mean(*window) if window is not None else None
    step = step.model_copy(
        update={"workers": workers if base.host is None else None, "machine_cpu_percent": cpu}
    )
    return judge(step, limits, offload_like)

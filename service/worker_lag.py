"""The worker's own event-loop lag: a ticker's lateness, as a histogram, a running total and a window maximum.

Every job, Redis reply, timer and heartbeat of a worker shares one event loop. A job that burns CPU delays all
of them: at max_jobs = 200 jobs of 3 ms CPU per page one loop round took up to 600 ms (issue 25), longer
than the bound on a Redis round trip. The ticker (one sleep every TICK_S, ~10 us of CPU each) measures that
delay from inside: how late each tick fires. Three readers use it:
- worker_conn's round-trip timeout reads the loop's busy time (`busy_s`, a running total: the interval
  before each late tick) to say whether a timeout came while the worker's own loop was busy;
- worker_adapt's claim limit reads the window maximum (`take_window_max`) every CONTROL_S;
- the heartbeat and the "loop lag" log lines (what analysis reads from the run folder) read the histogram.
"""

from __future__ import annotations

import asyncio
import bisect
import math
from collections.abc import Callable
from typing import Final

TICK_S: Final = 0.01
# timers fire a little late even on an idle loop (selector and libuv granularity): not lateness
SLACK_S: Final = 0.001
# a tick later than this says the loop was busy since the previous one (it had no chance to look sooner)
BUSY_LATE_S: Final = 0.005
# upper bucket edges (ms) of the lag histogram: a few ms resolution where the bound sits
BUCKETS_MS: Final = (
    1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 120, 150, 200, 250, 300, 400,
    500, 600, 800, 1000, 1500, 2000, 3000, 5000, 10000, math.inf,
)  # fmt: skip


def edge_label(edge: float) -> str:
    """A bucket edge as the JSON key the log lines use ("inf" for the last)."""
    return "inf" if math.isinf(edge) else f"{edge:g}"


def percentile_ms(counts: dict[str, int], q: float) -> float | None:
    """The q-quantile (0..1) of a histogram {edge label: count}: the upper edge of its bucket (conservative)."""
    pairs = sorted((math.inf if k == "inf" else float(k), n) for k, n in counts.items() if n > 0)
    total = sum(n for _, n in pairs)
    if total == 0:
        return None
    need, seen = q * total, 0
    for edge, n in pairs:
        seen += n
        if seen >= need:
            return edge
    return pairs[-1][0]  # pragma: no cover - seen reaches total


class LoopLag:
    """Lateness of a periodic ticker on the running loop (start() it inside the loop)."""

    def __init__(self, tick_s: float = TICK_S) -> None:
        self.tick_s = tick_s
        self.late_s = 0.0  # total lateness beyond SLACK_S since start: monotonic, read as a difference
        # total time the loop was busy (running callbacks, not polling): a late tick's whole interval since
        # the previous tick. Read as a difference by round-trip timeouts (service/worker_conn.py)
        self.busy_s = 0.0
        self.max_s = 0.0  # largest single lateness since start
        self._window_max_s = 0.0
        self._counts = [0] * len(BUCKETS_MS)  # since the last take_interval()
        self._interval_max_s = 0.0
        self._task: asyncio.Task[None] | None = None
        self.on_tick: Callable[[float], None] | None = None  # called with each tick's lateness (s)

    def start(self) -> None:
        """Start the ticker on the running loop (idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        """Stop the ticker."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    def record(self, late_s: float, interval_s: float = 0.0) -> None:
        """Count one tick that fired late_s after it was due, interval_s after the previous tick."""
        self.busy_s += interval_s if late_s > BUSY_LATE_S else 0.0
        late_s = max(late_s - SLACK_S, 0.0)
        self.late_s += late_s
        self.max_s = max(self.max_s, late_s)
        self._window_max_s = max(self._window_max_s, late_s)
        self._interval_max_s = max(self._interval_max_s, late_s)
        self._counts[bisect.bisect_left(BUCKETS_MS, late_s * 1000)] += 1

    def take_window_max(self) -> float:
        """The largest lateness since the last call (s), and start a new window."""
        value, self._window_max_s = self._window_max_s, 0.0
        return value

    def take_interval(self) -> dict[str, object]:
        """The histogram since the last call ({edge ms: count}, p50/p99/max ms), and start a new interval."""
        counts = {edge_label(e): n for e, n in zip(BUCKETS_MS, self._counts, strict=True) if n}
        out: dict[str, object] = {
            "ticks": sum(self._counts),
            "p50_ms": percentile_ms(counts, 0.5),
            "p99_ms": percentile_ms(counts, 0.99),
            "max_ms": round(self._interval_max_s * 1000, 1),
            "counts": counts,
        }
        self._counts = [0] * len(BUCKETS_MS)
        self._interval_max_s = 0.0
        return out

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        due = last + self.tick_s
        while True:
            await asyncio.sleep(max(due - loop.time(), 0.0))
            now = loop.time()
            late = now - due
            self.record(late, now - last)
            if self.on_tick is not None:
                self.on_tick(late)
            last, due = now, now + self.tick_s


_current: LoopLag | None = None


def install(lag: LoopLag | None) -> None:
    """Make lag the process's monitor (what round-trip timeouts read); None removes it."""
    global _current
    _current = lag


def current() -> LoopLag | None:
    """The process's monitor, if a worker installed one."""
    return _current

"""How many jobs a worker runs at once: between 1 and max_jobs, following its own event-loop lag.

The worker claims a new job only while fewer than `limit` run. Every CONTROL_S the limit is set from the
largest loop lag of that window (service/worker_lag.py):
- lag over the bound: the jobs sharing the loop are too many. When the loop is CPU-bound a round's length
  grows with the jobs that became ready in it, so the limit is scaled to the running count times
  AIM x bound / lag, at most once per HOLD_S, because the jobs already running finish only over time and the
  lag follows the limit with that delay. A cut is at most a fifth while the lag is within twice the bound
  (a CPU-bound loop sits near its bound: deeper cuts idled it, ~8 % of goodput in bench_overload.py) and at
  most a half beyond (jobs far heavier than the loop can carry get down fast; one stray pause, e.g. another
  process on the core, does not empty the worker);
- lag under the bound and the limit holding claims back: grow, at most once per SETTLE_S (the jobs just
  claimed must show their CPU first; every window until the first decrease). Far under it (a quarter of the
  bound) the limit doubles until the first decrease (slow start, clocked as below), then grows
  by a quarter; under AIM x the bound it grows by one (additive increase), above that it holds.
Slow start's increases are clocked by the jobs they let in, as TCP's slow start is by acks: until the first
decrease the limit grows only once a job claimed since its last increase has finished, or the first of them
has run CLOCK_S, so the lag it judges includes those jobs' work (after a decrease the jobs running already
show the loop's load, and growth is paced by SETTLE_S as before: a backlog left by an overload drains at once). A worker's first jobs spend their first iterations on Redis writes: without the
clock the first window's low lag doubled the limit before their CPU showed, and a worker starting on a
CPU-starved machine ran twice the jobs its loop could carry (round trips late by 1.2 s in issue 25's CI run).
I/O-bound jobs longer than CLOCK_S reach max_jobs of 200 from max_jobs / 4 in ~2 x CLOCK_S.
An I/O-bound job never lags the loop, so its worker still runs max_jobs; `adaptive_jobs=false` fixes the
limit at max_jobs (the comparison the benchmark makes).
"""

from __future__ import annotations

import time
from typing import Final

CONTROL_S: Final = 0.1
HOLD_S: Final = 0.5
SETTLE_S: Final = 0.2  # between two increases: jobs just claimed show their CPU within a page or two
AIM: Final = 0.9  # a decrease aims the lag at this fraction of the bound, and +1 probes stop there
NEAR_CUT: Final = 0.8  # the deepest cut while the lag is within twice the bound
FAR_CUT: Final = 0.5  # the deepest cut beyond it
CLOCK_S: Final = 0.5  # an increase waits this long after the last one's first new job, or for one to finish
START_FRACTION: Final = 4  # a worker starts at max_jobs / this: a CPU-heavy first batch cannot swamp it


class ClaimLimit:
    """The adaptive limit on running jobs (see the module docstring)."""

    def __init__(self, max_jobs: int, bound_s: float, enabled: bool = True) -> None:
        self.max_jobs = max_jobs
        self.bound_s = bound_s
        self.enabled = enabled
        self.limit = max(1, max_jobs // START_FRACTION) if enabled else max_jobs
        self.low = self.high = self.limit  # range the limit took (reported with the lag)
        self.decreases = 0
        self.epoch = 0  # increases so far: a job is tagged with it when claimed (finished() reads the tag)
        self._clocked = False  # a job claimed since the last increase has finished
        self._first_claim: float | None = None  # when the first job since the last increase was claimed
        self._last_decrease = self._last_increase = -HOLD_S
        self._window_start = time.monotonic()

    @property
    def _settle_s(self) -> float:
        # slow start (no decrease yet) grows every window: a backlog of I/O-bound jobs gets its slots fast
        return CONTROL_S if not self.decreases else SETTLE_S

    def due(self, now: float) -> bool:
        """True when a control window has passed since the last update."""
        return self.enabled and now - self._window_start >= CONTROL_S

    def claimed(self, now: float) -> int:
        """A job is claimed now: its tag for finished()."""
        if self._first_claim is None:
            self._first_claim = now
        return self.epoch

    def finished(self, epoch: int) -> None:
        """A job tagged `epoch` by claimed() finished."""
        if epoch == self.epoch:
            self._clocked = True

    def update(self, lag_s: float, running: int, held_back: bool, now: float) -> bool:
        """Set the limit from the window's largest lag; True when it rose (claims may resume)."""
        self._window_start = now
        before = self.limit
        if lag_s > self.bound_s:
            if now - self._last_decrease >= HOLD_S:
                deepest = NEAR_CUT if lag_s <= 2 * self.bound_s else FAR_CUT
                target = int(min(self.limit, running) * max(deepest, AIM * self.bound_s / lag_s))
                if target < self.limit:
                    self.limit = max(1, target)
                    self._last_decrease = now
                    self.decreases += 1
        elif (
            held_back
            and (
                self.decreases
                or self._clocked
                or (self._first_claim is not None and now - self._first_claim >= CLOCK_S)
            )
            and self.limit < self.max_jobs
            and now - self._last_increase >= self._settle_s
        ):
            if lag_s < self.bound_s / 4:
                # slow start doubles until the first decrease; afterwards a quarter at a time
                step = self.limit if not self.decreases else max(1, self.limit // 4)
            else:
                step = 1 if lag_s < AIM * self.bound_s else 0
            if step:
                self.limit = min(self.max_jobs, self.limit + step)
                self.epoch += 1
                self._clocked, self._first_claim = False, None
            self._last_increase = now
        self.low, self.high = min(self.low, self.limit), max(self.high, self.limit)
        return self.limit > before

    def take_range(self) -> tuple[int, int]:
        """The (lowest, highest) limit since the last call; the next range starts at the current limit."""
        out = (self.low, self.high)
        self.low = self.high = self.limit
        return out

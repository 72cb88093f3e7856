"""The open (arrival-rate) model: one arrival stream per Locust user, each request sent at its scheduled time
whether or not earlier ones have answered, up to a cap in flight (k6's constant-arrival-rate semantics)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, Final

import gevent
from gevent.pool import Pool

from loadtests._clock import Clock
from loadtests._loadgen import LoadgenStats

MAX_DROP_COUNT: Final = 1_000_000  # bound on counting overdue arrivals at the end
STOP_CHECK_S: Final = 0.1  # how often a waiting stream looks for a graceful stop
AHEAD_S: Final = 0.002  # an arrival's greenlet is spawned this early (see run_stream)


def _count_due(times: Iterator[float], now: float) -> int:
    n = 0
    for t in times:
        if t > now or n >= MAX_DROP_COUNT:
            break
        n += 1
    return n


def run_stream(
    times: Iterator[float],
    send: Callable[[float, Any], None],
    cap: int,
    stats: LoadgenStats,
    stopping: Callable[[], bool],
    stop_timeout_s: float,
    prepare: Callable[[], Any] = lambda: None,
) -> None:
    """Send send(intended_ts, prepare()) at each time of times in its own greenlet until killed or stopping().

    An arrival that finds `cap` requests in flight is dropped; one sent more than the late threshold after its
    schedule counts as late. Arrivals already due when the stream ends count as dropped.

    Nothing slow stands between an arrival's time and its send: the body is prepared and the request's
    greenlet spawned AHEAD_S early (spawning one costs ~50-250 us here), and that greenlet waits precisely
    (see _clock.py), then sends. So a request holds its pool slot from AHEAD_S before it starts.
    """
    pool = Pool(cap)
    clock = Clock()
    idle_clocks: list[Clock] = []  # one timerfd per arrival waiting at once (about AHEAD_S x rate), reused
    late_s = stats.late_threshold_ms / 1000.0

    def fire(t: float, body: Any) -> None:
        waiter = idle_clocks.pop() if idle_clocks else Clock()
        try:
            if not waiter.wait_until(t, stopping, STOP_CHECK_S):
                return  # graceful stop asked for while waiting: this arrival falls after the end
        finally:
            idle_clocks.append(waiter)
        stats.scheduled += 1
        if time.time() - t > late_s:
            stats.late += 1
        stats.sent += 1
        send(t, body)

    due: float | None = None
    try:
        for t in times:
            due = t
            body = prepare()
            # waits in slices so a graceful stop is seen at once, not after a long gap to the next arrival
            # (which made Locust wait out its whole --stop-timeout)
            if not clock.wait_until(t - AHEAD_S, stopping, STOP_CHECK_S, spin=False):
                due = None  # graceful stop asked for while waiting: this arrival falls after the end
                break
            due = None
            if pool.full():
                stats.scheduled += 1
                stats.dropped += 1
            else:
                pool.spawn(fire, t, body)
            # always yield, even when behind: the spawned requests must get to run
            gevent.sleep(0)
        # graceful stop (--stop-timeout): let the requests in flight finish
        pool.join(timeout=stop_timeout_s)
    finally:
        now = time.time()
        if due is not None and due <= now:
            missed = 1 + _count_due(times, now)
            stats.scheduled += missed
            stats.dropped += missed
        # a request killed mid-flight fires no request event: neither Locust nor the samples count it
        pool.kill(block=True, timeout=2.0)
        for c in (clock, *idle_clocks):
            c.close()

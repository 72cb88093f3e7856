"""The open (arrival-rate) model: one arrival stream per Locust user, each request sent at its scheduled time
whether or not earlier ones have answered, up to a cap in flight (k6's constant-arrival-rate semantics)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Final

import gevent
from gevent.pool import Pool

from loadtests._loadgen import LoadgenStats

MAX_DROP_COUNT: Final = 1_000_000  # bound on counting overdue arrivals at the end
STOP_CHECK_S: Final = 0.1  # how often a waiting stream looks for a graceful stop


def _count_due(times: Iterator[float], now: float) -> int:
    n = 0
    for t in times:
        if t > now or n >= MAX_DROP_COUNT:
            break
        n += 1
    return n


def run_stream(
    times: Iterator[float],
    send: Callable[[float], None],
    cap: int,
    stats: LoadgenStats,
    stopping: Callable[[], bool],
    stop_timeout_s: float,
) -> None:
    """Send send(intended_ts) at each time of times in its own greenlet until killed or stopping() is true.

    An arrival that finds `cap` requests in flight is dropped; one sent more than the late threshold after its
    schedule counts as late. Arrivals already due when the stream ends count as dropped.
    """
    pool = Pool(cap)
    late_s = stats.late_threshold_ms / 1000.0
    due: float | None = None
    try:
        for t in times:
            due = t
            # always yield, even when behind: the spawned requests must get to run; wait in slices so a
            # graceful stop is seen at once, not after a long gap to the next arrival (which made Locust wait
            # out its whole --stop-timeout)
            gevent.sleep(min(max(0.0, t - time.time()), STOP_CHECK_S))
            while not stopping() and (wait_s := t - time.time()) > 0:
                gevent.sleep(min(wait_s, STOP_CHECK_S))
            if stopping():  # graceful stop asked for while waiting: this arrival falls after the end
                due = None
                break
            stats.scheduled += 1
            due = None
            if pool.full():
                stats.dropped += 1
                continue
            if time.time() - t > late_s:
                stats.late += 1
            stats.sent += 1
            pool.spawn(send, t)
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

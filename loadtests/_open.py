"""The open (arrival-rate) model: one arrival stream per Locust user, each request sent at its scheduled time
whether or not earlier ones have answered, up to a cap in flight (k6's constant-arrival-rate semantics)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, Final

import gevent
from gevent.event import Event
from gevent.hub import Waiter, get_hub

from loadtests._clock import Clock
from loadtests._loadgen import LoadgenStats

MAX_DROP_COUNT: Final = 1_000_000  # bound on counting overdue arrivals at the end
STOP_CHECK_S: Final = 0.1  # how often a waiting stream looks for a graceful stop
# an arrival further off than this is first waited for coarsely until this long before it: a wake-up after a
# long idle takes longer than the precise wait's lead here (the machine's idle states), a warm one does not
WARM_S: Final = 0.002


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
    """Send send(intended_ts, prepare()) at each time of times, each in a greenlet of its own, until killed or
    stopping().

    An arrival that finds `cap` requests in flight is dropped; one sent more than the late threshold after its
    schedule counts as late. Arrivals already due when the stream ends count as dropped.

    A relay: one greenlet at a time holds the stream's clock. It prepares the next body, waits precisely
    until the arrival (see _clock.py), passes the clock on and sends at once; the next holder starts waiting
    once this request is out. After its answer a greenlet waits, idle, to be handed the clock again. So an
    arrival costs one precise wait and one hand-over (~1 us), and nothing stands between its time and its
    send. Measured before (issue 22): a greenlet spawned per arrival 2 ms ahead, in a Pool, each with a
    precise wait of its own behind the stream's coarse one: ~11 us per spawn, two waits, the Pool's links;
    ~215 us of CPU per request where bare Locust spends ~105, now ~150-165.
    """
    clock = Clock()
    hub = get_hub()
    late_s = stats.late_threshold_ms / 1000.0
    greenlets: set[Any] = set()  # every greenlet of this stream: the clock's holder, senders, idle ones
    idle: list[Waiter[Any]] = []  # the idle greenlets, each waiting for the clock
    in_flight = 0
    due: float | None = None  # the arrival the clock's holder waits for
    ended = Event()  # the holder saw a graceful stop, or failed
    drained = Event()  # ended, and nothing in flight
    error: list[BaseException] = []

    def next_arrival() -> tuple[float, Any] | None:
        """Wait for the next arrival not dropped: (its time, its body); None at a graceful stop."""
        nonlocal due
        while True:
            t = due = next(times)
            body = prepare()
            # the coarse wait returns at once, without yielding, when t is closer than WARM_S
            if not (
                clock.wait_until(t - WARM_S, stopping, STOP_CHECK_S, spin=False)
                and clock.wait_until(t, stopping, STOP_CHECK_S)
            ):
                due = None  # graceful stop asked for while waiting: this arrival falls after the end
                return None
            due = None
            stats.scheduled += 1
            if in_flight < cap:
                return t, body
            stats.dropped += 1

    def pass_clock() -> None:
        # runs after this greenlet yields, i.e. once its request is out
        if idle:
            hub.loop.run_callback(idle.pop().switch, None)
        else:
            greenlets.add(gevent.spawn(relay))

    def relay() -> None:
        nonlocal in_flight
        try:
            while True:
                try:
                    arrival = next_arrival()
                except Exception as exc:  # e.g. a request that cannot be built: the task fails as it did
                    error.append(exc)
                    arrival = None
                if arrival is None:
                    ended.set()
                    if not in_flight:
                        drained.set()
                    return
                t, body = arrival
                if time.time() - t > late_s:
                    stats.late += 1
                stats.sent += 1
                pass_clock()
                in_flight += 1
                try:
                    send(t, body)
                finally:
                    in_flight -= 1
                    if not in_flight and ended.is_set():
                        drained.set()
                waiter: Waiter[Any] = Waiter(hub)
                idle.append(waiter)
                waiter.get()
        finally:
            greenlets.discard(gevent.getcurrent())

    try:
        greenlets.add(gevent.spawn(relay))
        ended.wait()
        if error:
            raise error[0]
        drained.wait(timeout=stop_timeout_s)  # graceful stop (--stop-timeout): the requests in flight finish
    finally:
        # the holder too, so that nothing takes arrivals from times any more (a request killed mid-flight fires
        # no request event: neither Locust nor the samples count it)
        gevent.killall(list(greenlets), block=True, timeout=2.0)
        now = time.time()
        if due is not None and due <= now:
            missed = 1 + _count_due(times, now)
            stats.scheduled += missed
            stats.dropped += missed
        clock.close()

"""Precise waits for the open model: wake within ~0.1 ms of an epoch time without burning a core.

Why not gevent.sleep: gevent's default libev loop waits in epoll_wait, whose timeout is whole milliseconds
rounded up, and never less than 1 ms (libev's backend_mintime); its timers also start from the loop's cached
time, so a sleep often ends a little early and the re-sleep for the last few microseconds costs a whole
millisecond. Measured on this machine: sends ~0.6-0.7 ms late at p50 at any rate.

What we do instead: a Linux timerfd armed at an absolute CLOCK_REALTIME time (the same clock as time.time()),
watched by the gevent hub like any socket. Its hrtimer wakes the loop at the requested nanosecond, so the loop
is woken a little before the arrival (LEAD_S) and the last stretch is a cooperative spin. Each look at the
clock in the spin goes through one loop iteration (a due timer of the lowest priority): responses that came
meanwhile are read first. gevent.sleep(0) would not do that: it only queues a callback, and gevent runs the
callbacks queued meanwhile in the same pass without polling, so a spin by it held every response for up to
LEAD_S per arrival. Elsewhere (no timerfd) the fallback sleeps to SPIN_FALLBACK_S before and spins the rest.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import time
from collections.abc import Callable
from typing import Any, Final

import gevent
from gevent.hub import get_hub

LEAD_S: Final = 0.000_1  # the timerfd wakes this early; the rest is spun (about one wake-up's jitter here)
# libev runs the watchers ready in one loop iteration highest priority first: a due arrival goes before the
# responses that became readable at the same time (EV_MAXPRI)
PRIORITY: Final = 2
SPIN_PRIORITY: Final = -2  # EV_MINPRI: the spin's next look at the clock comes after every ready watcher
SPIN_FALLBACK_S: Final = 0.001_5  # without a timerfd: epoll's 1 ms granularity plus margin
_CLOCK_REALTIME: Final = 0
_TFD_TIMER_ABSTIME: Final = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc() -> Any:
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        lib.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.timerfd_settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    except (OSError, AttributeError, TypeError):
        return None
    return lib


_LIBC: Final = _libc()


class Clock:
    """Waits until epoch times for one arrival stream (one timerfd, reused); close() when done."""

    def __init__(self) -> None:
        self._fd = -1
        self._watcher: Any = None
        if _LIBC is not None:
            fd = _LIBC.timerfd_create(_CLOCK_REALTIME, os.O_NONBLOCK | os.O_CLOEXEC)
            if fd >= 0:
                self._fd = fd
                self._watcher = get_hub().loop.io(fd, 1, priority=PRIORITY)  # 1 = readable
        self._spec = _Itimerspec()
        # a 0 s timer starts from the loop's cached time, so it is due at the next iteration: never a wait
        self._spin = get_hub().loop.timer(0.0, priority=SPIN_PRIORITY)

    @property
    def precise(self) -> bool:
        """Whether waits use the timerfd (False: the gevent.sleep + spin fallback)."""
        return self._fd >= 0

    def _sleep_until(self, ts: float) -> None:
        """Block this greenlet (not the loop) until about ts (a timerfd), or until at most ts (fallback)."""
        if self._fd < 0:
            gevent.sleep(max(0.0, ts - time.time() - SPIN_FALLBACK_S))
            return
        sec = int(ts)
        value = self._spec.it_value
        value.tv_sec, value.tv_nsec = sec, int((ts - sec) * 1e9)
        if _LIBC.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None) != 0:
            gevent.sleep(max(0.0, ts - time.time() - SPIN_FALLBACK_S))
            return
        get_hub().wait(self._watcher)
        try:
            os.read(self._fd, 8)  # clear the expiry count (re-arming would too; a read is cheap)
        except BlockingIOError:
            pass

    def wait_until(
        self, ts: float, stopping: Callable[[], bool], check_every_s: float, spin: bool = True
    ) -> bool:
        """Wait until ts (epoch s), looking at stopping() at least every check_every_s; False if it came true.

        Returns at once, without yielding, when ts is already past. spin=False: no spin, the wake-up may be
        late by one wake-up's jitter (timerfd) or by epoll's millisecond (fallback).
        """
        lead = (LEAD_S if self._fd >= 0 else SPIN_FALLBACK_S) if spin else 0.0
        while True:
            if stopping():
                return False
            now = time.time()
            if ts - now <= lead:
                break
            self._sleep_until(min(ts - lead, now + check_every_s))
        while time.time() < ts:
            self._spin_once()
        return not stopping()

    def _spin_once(self) -> None:
        """One loop iteration: I/O polled, every greenlet ready run, then back here."""
        get_hub().wait(self._spin)

    def close(self) -> None:
        """Release the timerfd."""
        self._spin.close()
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

"""The worker's Redis connection: arq's settings object, and the pool with bounded timeouts and keepalive."""

from __future__ import annotations

import asyncio
import io
import logging
import pickle
from collections.abc import Awaitable
from typing import Any, Final, TypeVar

from arq.connections import ArqRedis, RedisSettings
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry as RedisRetry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service import worker_lag
from service.settings import Settings

_T = TypeVar("_T")


class _DataOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(
            f"refused: the payload names {module}.{name} (only plain data is accepted)"
        )


def load_job(data: bytes) -> Any:
    """arq's job deserializer for our worker: pickle restricted to plain data (no globals, so no code).

    Our payloads are arq's pickle of {t, f, a, k, et} with str/int/tuple/dict values: a stock arq worker
    still runs them unchanged, while our worker cannot be made to import and call anything by whoever can
    write to Redis. A refused payload ends in the DLQ (parking.py) with its bytes.
    """
    return _DataOnlyUnpickler(io.BytesIO(data)).load()


# a round trip's wall time is capped at this many times its timeout however late the loop was: a Redis that
# hangs while the worker's loop is busy still ends in a timeout, just later
WALL_CAP_FACTOR: Final = 4.0
GRACE_S: Final = 0.002


class LoopLateTimeoutError(RedisTimeoutError):
    """A round trip ran out of time while the worker's own loop was late (CPU-bound), not Redis."""


class _RoundTripTimeout:
    """asyncio.timeout for one Redis round trip, charging Redis only the time the loop was free to read.

    A timer that fires late means the loop was busy: a reply may sit in the socket buffer, read in a later
    round. So when the timer fires, the loop's busy time since the round trip began (the ticker's running
    total, service/worker_lag.py, or at least the timer's own lateness) is subtracted from the time waited;
    if that leaves time, or the timer itself fired late, it is re-armed (at least GRACE_S on: past the next
    I/O poll and the wake-ups it schedules, on asyncio's loop and uvloop's alike). Only a round trip that had
    its full timeout of free loop time to be answered (or waited WALL_CAP_FACTOR x the timeout in wall time)
    is cancelled. A hung Redis on a responsive loop times out exactly as before.
    """

    __slots__ = ("_blocked", "_cancelling", "_fired", "_handle", "_lag", "_late0", "_loop", "_start",
                 "_task", "_timeout_s", "_when")  # fmt: skip

    def __init__(self, timeout_s: float) -> None:
        self._timeout_s = timeout_s

    async def __aenter__(self) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        self._loop, self._task = loop, task
        self._cancelling = task.cancelling()
        self._lag = worker_lag.current()
        self._late0 = self._lag.busy_s if self._lag is not None else 0.0
        self._blocked = 0.0
        self._fired = False
        self._start = loop.time()
        self._when = self._start + self._timeout_s
        self._handle = loop.call_at(self._when, self._on_timer)

    def _on_timer(self) -> None:
        now = self._loop.time()
        own = max(now - self._when - worker_lag.SLACK_S, 0.0)
        ticked = self._lag.busy_s - self._late0 if self._lag is not None else 0.0
        self._blocked = max(self._blocked + own, ticked)
        waited = now - self._start
        if waited < self._timeout_s * WALL_CAP_FACTOR:
            remaining = self._timeout_s - (waited - self._blocked)
            if remaining > 0 or own > 0:
                self._when = now + max(remaining, GRACE_S)
                self._handle = self._loop.call_at(self._when, self._on_timer)
                return
        self._fired = True
        self._task.cancel()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        self._handle.cancel()
        if self._fired and exc_type is asyncio.CancelledError and self._task.uncancel() <= self._cancelling:
            waited = self._loop.time() - self._start
            if self._blocked * 2 >= self._timeout_s:
                raise LoopLateTimeoutError(
                    f"redis round trip gave up after {waited:.2f} s: the worker's own loop was late "
                    f"{self._blocked:.2f} s of it (worker CPU-bound, not redis)"
                ) from exc
            raise RedisTimeoutError(f"redis did not answer within {self._timeout_s:g} s") from exc


async def _within(timeout_s: float, call: Awaitable[_T]) -> _T:
    """Await one Redis round trip, bounded by timeout_s of loop time (redis' TimeoutError when it runs out)."""
    async with _RoundTripTimeout(timeout_s):
        return await call


class _BoundedPipeline(Pipeline):
    """A pipeline whose round trip (all its replies) is bounded by one timeout."""

    round_trip_timeout_s: float = 5.0

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        return await _within(self.round_trip_timeout_s, super().execute(raise_on_error))

    async def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        sent = super().immediate_execute_command(*args, **options)  # type: ignore[no-untyped-call]
        return await _within(self.round_trip_timeout_s, sent)


class BoundedArqRedis(ArqRedis):
    """arq's client with every round trip (one command, one pipeline) bounded by round_trip_timeout_s.

    redis-py's socket_timeout does the same per reply: an asyncio timeout around every reply read, ~12 per
    pipeline of arq's finish transaction, which cost ~30 % of the worker's CPU per no-op job
    (benchmarks/README.md). One timeout per round trip bounds the same waits; a timed-out command's
    connection is closed by redis-py (a cancelled read disconnects), so no stale reply is read later.
    """

    round_trip_timeout_s: float = 5.0

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        sent = super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        return await _within(self.round_trip_timeout_s, sent)

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> _BoundedPipeline:
        pipe = _BoundedPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        pipe.round_trip_timeout_s = self.round_trip_timeout_s
        return pipe


CONNECT_RETRIES: Final = 30  # at start, wait up to ~30 s for Redis (as arq's create_pool did)
log = logging.getLogger("service.worker")


def redis_settings(settings: Settings) -> RedisSettings:
    """arq's connection settings (for arq's own use of them; the pool itself is built by `connect`)."""
    rs = RedisSettings.from_dsn(settings.redis_url)
    rs.conn_timeout = max(1, int(settings.redis_timeout_s + 0.999))
    rs.conn_retries = CONNECT_RETRIES
    rs.conn_retry_delay = 1
    return rs


async def connect(settings: Settings) -> ArqRedis:
    """The worker's pool: every round trip bounded (connect timeout, one timeout per command or pipeline),
    TCP keepalive on.

    arq's create_pool sets no read timeout: a Redis that accepts connections but does not answer would block
    polls, outcome writes and the shutdown for good. A timed-out command raises (the job is retried or left
    to its claim's expiry) and is not retried blindly: it may have been applied. Connection errors are
    retried briefly. At start, waits for Redis up to CONNECT_RETRIES seconds.
    """
    timeout_s = settings.redis_timeout_s
    for attempt in range(CONNECT_RETRIES + 1):
        pool: BoundedArqRedis = BoundedArqRedis.from_url(
            settings.redis_url,
            socket_connect_timeout=timeout_s,
            socket_keepalive=True,
            retry_on_timeout=False,
            retry_on_error=[RedisConnectionError],
            retry=RedisRetry(ExponentialBackoff(cap=0.5, base=0.02), retries=4),
        )
        pool.round_trip_timeout_s = timeout_s
        try:
            await pool.ping()
            return pool
        except (RedisError, OSError) as exc:
            await pool.aclose()
            if attempt == CONNECT_RETRIES:
                raise
            log.warning("redis not reachable yet, retrying", extra={"error": f"{type(exc).__name__}: {exc}"})
            await asyncio.sleep(1.0)
    raise AssertionError("unreachable")  # pragma: no cover

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
from redis.asyncio.connection import BlockingConnectionPool
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


# a round trip is given up only after its deadline (timeout_s of wall time) and this many loop iterations
# after it: a command and its reply take 4-5 iterations of the client (connection check, send, wake-up,
# read), 10-15 with a new connection (TCP connect, AUTH, CLIENT SETINFO), however long each is (measured on
# asyncio's loop and uvloop): a reply Redis sent in time is read within them
ITERATIONS_AFTER_DEADLINE: Final = 24
ITERATION_TIMER_S: Final = 0.002  # re-armed this far ahead: the next firing is in a later iteration


class LoopLateTimeoutError(RedisTimeoutError):
    """Redis did not answer in time while the worker's own loop was busy most of the wait (a CPU-bound
    machine: Redis may have been starved of CPU too)."""


class _RoundTripTimeout:
    """asyncio.timeout for one Redis round trip, fair to a worker whose loop runs late.

    A loop busy with CPU-bound jobs runs its iterations late: the client's own steps of a round trip (the
    connection check, the send, the wake-up on the reply, the read) each wait for one, so a round trip can
    take many times its timeout in wall time although Redis answered at once. So the timer set at the
    deadline (timeout_s of wall time) re-arms itself ITERATION_TIMER_S ahead, which makes each firing a new
    loop iteration (each polls every socket), and cancels only at the ITERATIONS_AFTER_DEADLINE-th: by then
    a reply sent in time has been read, however long the iterations were. On an idle loop a hung Redis times
    out ~50 ms after the deadline; on a CPU-bound one that many iterations later. Issue 25: a wall-time cap
    of 4 x the timeout cancelled round trips that Redis had answered while the loop was busy 1.2 s, and
    jobs ran twice. The ticker's busy time (service/worker_lag.py) only names the cause of a timeout.
    """

    __slots__ = ("_busy0", "_cancelling", "_fired", "_handle", "_iterations", "_lag", "_loop", "_start",
                 "_task", "_timeout_s")  # fmt: skip

    def __init__(self, timeout_s: float) -> None:
        self._timeout_s = timeout_s

    async def __aenter__(self) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        self._loop, self._task = loop, task
        self._cancelling = task.cancelling()
        self._lag = worker_lag.current()
        self._busy0 = self._lag.busy_s if self._lag is not None else 0.0
        self._iterations = 0
        self._fired = False
        self._start = loop.time()
        self._handle = loop.call_at(self._start + self._timeout_s, self._on_timer)

    def _on_timer(self) -> None:
        self._iterations += 1
        if self._iterations < ITERATIONS_AFTER_DEADLINE:
            self._handle = self._loop.call_at(self._loop.time() + ITERATION_TIMER_S, self._on_timer)
            return
        self._fired = True
        self._task.cancel()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        self._handle.cancel()
        if self._fired and exc_type is asyncio.CancelledError and self._task.uncancel() <= self._cancelling:
            waited = self._loop.time() - self._start
            busy = self._lag.busy_s - self._busy0 if self._lag is not None else 0.0
            if busy * 2 >= waited:
                raise LoopLateTimeoutError(
                    f"redis did not answer within {self._timeout_s:g} s (given up after {waited:.2f} s, "
                    f"{ITERATIONS_AFTER_DEADLINE} loop iterations past the deadline); the worker's own loop "
                    f"was busy {busy:.2f} s of it (CPU-bound machine)"
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
    """The worker's pool: every round trip bounded (one timeout per command or pipeline, the connect it may
    open included), TCP keepalive on.

    arq's create_pool sets no read timeout: a Redis that accepts connections but does not answer would block
    polls, outcome writes and the shutdown for good. A timed-out command raises (the job is retried or left
    to its claim's expiry) and is not retried blindly: it may have been applied. Connection errors are
    retried briefly. At start, waits for Redis up to CONNECT_RETRIES seconds.
    """
    timeout_s = settings.redis_timeout_s
    for attempt in range(CONNECT_RETRIES + 1):
        connections = BlockingConnectionPool.from_url(
            settings.redis_url,
            # redis-py's default pool opens a new connection while holding its lock: on a busy loop (10-15
            # iterations a connect) a burst of new ones queued behind each other past any round trip's
            # bound. This one connects outside its lock; a round trip waits for a free connection (never
            # for long: enough for every job's one round trip at a time, the poll and the heartbeat)
            max_connections=2 * settings.max_jobs + 16,
            timeout=None,
            # every connection is opened inside a round trip, which bounds it (a redis-py connect timeout
            # would fire while the loop is merely late: a false "redis unavailable")
            socket_connect_timeout=None,
            socket_keepalive=True,
            retry_on_timeout=False,
            retry_on_error=[RedisConnectionError],
            retry=RedisRetry(ExponentialBackoff(cap=0.5, base=0.02), retries=4),
        )
        pool = BoundedArqRedis(connection_pool=connections)
        pool.auto_close_connection_pool = True  # aclose() closes its connections too
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

"""The worker's Redis connection: arq's settings object, and the pool with bounded timeouts and keepalive."""

from __future__ import annotations

import asyncio
import io
import logging
import pickle
from typing import Any, Final

from arq.connections import ArqRedis, RedisSettings
from redis.asyncio.retry import Retry as RedisRetry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from service.settings import Settings


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
    """The worker's pool: every command bounded (connect and read timeouts), TCP keepalive on.

    arq's create_pool sets no read timeout: a Redis that accepts connections but does not answer would block
    polls, outcome writes and the shutdown for good. A timed-out command raises (the job is retried or left
    to its claim's expiry) and is not retried blindly: it may have been applied. Connection errors are
    retried briefly. At start, waits for Redis up to CONNECT_RETRIES seconds.
    """
    timeout_s = settings.redis_timeout_s
    for attempt in range(CONNECT_RETRIES + 1):
        pool: ArqRedis = ArqRedis.from_url(
            settings.redis_url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            socket_keepalive=True,
            retry_on_timeout=False,
            retry_on_error=[RedisConnectionError],
            retry=RedisRetry(ExponentialBackoff(cap=0.5, base=0.02), retries=4),
        )
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

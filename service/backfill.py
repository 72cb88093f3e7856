"""The backfill: the slow part of "connect a source". One function, used by sync mode and by the worker.

Per page: a simulated I/O wait (log-normal, seeded), real CPU work (blocks the event loop, as real parsing would),
then an idempotent write of the page's digest. The stored data depends only on (user_id, name, page), so the
same input gives the same stored result in sync and offload mode and a re-run writes the same fields.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from service import keys
from service.settings import WorkProfile


class BackfillError(Exception):
    """The backfill of a source failed."""


class TransientBackfillError(BackfillError):
    """A failure that a later attempt may not hit (the worker retries it)."""


class PoisonBackfillError(BackfillError):
    """A failure every attempt hits (never retried: straight to the DLQ)."""


class SourceMissingError(PoisonBackfillError):
    """The source record is gone (expired or never written): nothing to backfill."""


@dataclass(frozen=True)
class BackfillResult:
    """What one successful backfill did."""

    source_id: str
    pages: int
    result_digest: str
    attempt: int
    io_ms: float
    cpu_ms: float


def _rng(*parts: object) -> random.Random:
    # a string seed is hashed with SHA-512 by random.Random: stable across processes (unlike hash())
    return random.Random("\x1f".join(str(p) for p in parts))


def io_wait_ms(work: WorkProfile, source_id: str, page: int) -> float:
    """The simulated I/O wait of one page: log-normal with mean work.io_ms and shape work.io_sigma."""
    if work.io_ms <= 0:
        return 0.0
    mu = math.log(work.io_ms) - work.io_sigma**2 / 2  # so that the mean is io_ms, not the median
    return _rng(work.seed, source_id, page, "io").lognormvariate(mu, work.io_sigma)


def failure_plan(work: WorkProfile, source_id: str, attempt: int) -> tuple[str, int] | None:
    """("poison" | "transient", page it fails at) for this attempt, or None when it succeeds. Seeded."""
    pages = max(work.pages, 1)
    poison = _rng(work.seed, source_id, "poison")
    if poison.random() < work.poison_rate:
        return "poison", poison.randrange(pages)
    transient = _rng(work.seed, source_id, attempt, "transient")
    if transient.random() < work.transient_rate:
        return "transient", transient.randrange(pages)
    return None


def page_digest(user_id: str, name: str, page: int) -> str:
    """The page's backfilled data: deterministic in (user_id, name, page), independent of the source id."""
    return hashlib.sha256(f"{user_id}\x1f{name}\x1f{page}".encode()).hexdigest()


def result_digest(page_digests: list[str]) -> str:
    """Digest of all pages in order: equal stored data gives an equal result digest."""
    return hashlib.sha256("".join(page_digests).encode()).hexdigest()


def burn_cpu(cpu_ms: float) -> float:
    """Spend cpu_ms of this thread's CPU time hashing (blocks the event loop on purpose). Returns ms spent."""
    if cpu_ms <= 0:
        return 0.0
    start = time.thread_time()
    end = start + cpu_ms / 1000
    block = b"x" * 4096
    while time.thread_time() < end:
        for _ in range(8):  # ~ tens of microseconds between clock reads
            block = hashlib.sha256(block).digest() * 128
    return (time.thread_time() - start) * 1000


def backoff_s(attempt: int, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """Exponential back-off with full jitter: uniform(0, min(cap, base * 2**(attempt-1)))."""
    ceiling = min(cap_s, base_s * 2 ** max(attempt - 1, 0))
    return (rng or random).uniform(0, ceiling)


async def mark_source(redis: Redis, source_id: str, ttl_s: int, **fields: str | int | float) -> None:
    """HSET fields on the source record and refresh its TTL."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(keys.source(source_id), mapping=fields)
        pipe.expire(keys.source(source_id), ttl_s)
        await pipe.execute()


def running_fields(attempt: int) -> dict[str, str | int | float]:
    """The source's fields when an attempt starts."""
    return {"state": "running", "attempts": attempt, "started_ts": _now_s()}


def done_fields(result: BackfillResult) -> dict[str, str | int | float]:
    """The source's fields when a backfill succeeded."""
    return {
        "state": "done",
        "done_ts": _now_s(),
        "result_digest": result.result_digest,
        "pages": result.pages,
    }


async def run_backfill(
    redis: Redis,
    source_id: str,
    work: WorkProfile,
    attempt: int = 1,
    *,
    ttl_s: int = 86_400,
    user_id: str | None = None,
    name: str | None = None,
    marked: bool = False,
) -> BackfillResult:
    """Backfill one source: per page wait, burn CPU, write the page digest; then mark the source done.

    user_id/name are read from the source record when not given (the worker's job carries only the id).
    marked=True: the caller wrote running_fields at the start and writes done_fields on success itself (the
    worker does both in round trips it makes anyway); the failure path still marks the source pending.
    Raises TransientBackfillError (retry it), PoisonBackfillError (never succeeds) or a RedisError. On a
    backfill error the source goes back to state `pending` with `last_error`; the caller marks it `dead`
    when it gives up.
    """
    source_key = keys.source(source_id)
    if user_id is None or name is None:
        stored_user, stored_name = await redis.hmget(  # type: ignore[misc]  # redis-py types async and sync alike
            source_key, ["user_id", "name"]
        )
        if stored_user is None or stored_name is None:
            raise SourceMissingError(f"source {source_id} has no record (expired or never created)")
        user_id, name = keys.text(stored_user), keys.text(stored_name)
    if not marked:
        await mark_source(redis, source_id, ttl_s, **running_fields(attempt))

    plan = failure_plan(work, source_id, attempt)
    data_key = keys.source_data(source_id)
    digests: list[str] = []
    io_total_ms = cpu_total_ms = 0.0
    try:
        for page in range(work.pages):
            if plan is not None and plan[1] == page:
                kind, at = plan
                exc = PoisonBackfillError if kind == "poison" else TransientBackfillError
                raise exc(f"{kind} failure at page {at} of source {source_id} (attempt {attempt})")
            wait_ms = io_wait_ms(work, source_id, page)
            if wait_ms > 0:
                await asyncio.sleep(wait_ms / 1000)
            io_total_ms += wait_ms
            cpu_total_ms += burn_cpu(work.cpu_ms)
            digest = page_digest(user_id, name, page)
            digests.append(digest)
            async with redis.pipeline(transaction=False) as pipe:
                pipe.hset(data_key, str(page), digest)
                pipe.expire(data_key, ttl_s)
                await pipe.execute()
        if plan is not None:  # pages == 0 but a failure was drawn: still fail, the rates must hold
            kind = plan[0]
            exc = PoisonBackfillError if kind == "poison" else TransientBackfillError
            raise exc(f"{kind} failure of source {source_id} (attempt {attempt})")
    except BackfillError as err:
        await mark_source(redis, source_id, ttl_s, state="pending", last_error=str(err))
        raise
    result = BackfillResult(source_id, work.pages, result_digest(digests), attempt, io_total_ms, cpu_total_ms)
    if not marked:
        await mark_source(redis, source_id, ttl_s, **done_fields(result))
    return result


def _now_s() -> str:
    return f"{time.time():.3f}"

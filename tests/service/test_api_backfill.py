"""The backfill function (real Redis, in-process): seeded draws, real CPU, idempotent writes, failure kinds."""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest
from redis.asyncio import Redis

from service import keys
from service.backfill import (
    PoisonBackfillError,
    SourceMissingError,
    TransientBackfillError,
    backoff_s,
    burn_cpu,
    failure_plan,
    io_wait_ms,
    page_digest,
    result_digest,
    run_backfill,
)
from service.settings import WorkProfile

FAST = WorkProfile(pages=4, io_ms=2.0, io_sigma=0.3, cpu_ms=0.5, transient_rate=0, poison_rate=0, seed=3)


async def _source(redis: Redis, source_id: str, user_id: str = "u", name: str = "n") -> None:
    await redis.hset(keys.source(source_id), mapping={"user_id": user_id, "name": name, "state": "pending"})


def test_io_wait_is_seeded_and_lognormal_around_the_mean() -> None:
    work = WorkProfile(io_ms=40.0, io_sigma=0.5, seed=1)
    assert io_wait_ms(work, "s1", 0) == io_wait_ms(work, "s1", 0)
    assert io_wait_ms(work, "s1", 0) != io_wait_ms(work, "s1", 1)
    assert io_wait_ms(work.model_copy(update={"seed": 2}), "s1", 0) != io_wait_ms(work, "s1", 0)
    draws = [io_wait_ms(work, f"s{i}", p) for i in range(400) for p in range(5)]
    assert 36 < statistics.fmean(draws) < 44  # mean is io_ms (not the median)
    assert statistics.median(draws) < statistics.fmean(draws)  # right-skewed, as I/O waits are
    assert io_wait_ms(work.model_copy(update={"io_ms": 0.0}), "s1", 0) == 0.0


def test_failure_plan_rates_and_determinism() -> None:
    work = WorkProfile(pages=5, transient_rate=0.2, poison_rate=0.1, seed=9)
    plans = [failure_plan(work, f"src-{i}", 1) for i in range(3000)]
    assert plans == [failure_plan(work, f"src-{i}", 1) for i in range(3000)]
    poison = sum(1 for p in plans if p is not None and p[0] == "poison") / len(plans)
    transient = sum(1 for p in plans if p is not None and p[0] == "transient") / len(plans)
    assert 0.07 < poison < 0.13  # 0.1 +- ~5 sigma
    assert 0.14 < transient < 0.22  # 0.9 * 0.2 = 0.18
    assert all(0 <= p[1] < 5 for p in plans if p is not None)
    # poison holds on every attempt; transient is redrawn per attempt
    poisoned = [f"src-{i}" for i, p in enumerate(plans) if p is not None and p[0] == "poison"]
    assert all(failure_plan(work, s, a) == failure_plan(work, s, 1) for s in poisoned[:50] for a in (2, 3, 7))


def test_backoff_grows_with_full_jitter() -> None:
    import random

    rng = random.Random(1)
    for attempt, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (10, 30.0)):
        draws = [backoff_s(attempt, 0.5, 30.0, rng) for _ in range(500)]
        assert 0 <= min(draws) and max(draws) <= ceiling and max(draws) > 0.8 * ceiling


def test_burn_cpu_spends_thread_cpu_time() -> None:
    start = time.thread_time()
    spent_ms = burn_cpu(30)
    assert spent_ms >= 30 and (time.thread_time() - start) * 1000 >= 30


async def test_cpu_work_blocks_the_event_loop(redis_url: str) -> None:
    """Real CPU per page, not a sleep: a concurrent ticker is starved for at least one page's cpu_ms."""
    redis = Redis.from_url(redis_url)
    await _source(redis, "cpu")
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    work = FAST.model_copy(update={"pages": 2, "io_ms": 0.0, "cpu_ms": 40.0})
    await run_backfill(redis, "cpu", work)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await redis.aclose()
    assert max(gaps) >= 0.04


async def test_backfill_writes_pages_and_marks_done_idempotently(redis_url: str) -> None:
    redis = Redis.from_url(redis_url, decode_responses=True)
    await _source(redis, "s1", "alice", "drive")
    first = await run_backfill(redis, "s1", FAST, attempt=1, ttl_s=600)
    data = await redis.hgetall(keys.source_data("s1"))
    second = await run_backfill(redis, "s1", FAST, attempt=2, ttl_s=600)  # a duplicate execution
    assert await redis.hgetall(keys.source_data("s1")) == data
    assert data == {str(p): page_digest("alice", "drive", p) for p in range(4)}
    assert first.result_digest == second.result_digest == result_digest([data[str(p)] for p in range(4)])
    source = await redis.hgetall(keys.source("s1"))
    assert (
        source["state"] == "done"
        and source["attempts"] == "2"
        and source["result_digest"] == first.result_digest
    )
    assert 0 < await redis.ttl(keys.source_data("s1")) <= 600
    # the stored data depends on (user_id, name, page), not on the source id
    await _source(redis, "s2", "alice", "drive")
    assert (await run_backfill(redis, "s2", FAST)).result_digest == first.result_digest
    await redis.aclose()


async def test_transient_failure_marks_pending_then_a_retry_succeeds(redis_url: str) -> None:
    redis = Redis.from_url(redis_url, decode_responses=True)
    await _source(redis, "t1")
    failing = FAST.model_copy(update={"transient_rate": 1.0})
    with pytest.raises(TransientBackfillError):
        await run_backfill(redis, "t1", failing, attempt=1)
    source = await redis.hgetall(keys.source("t1"))
    assert source["state"] == "pending" and "transient" in source["last_error"]
    done = await run_backfill(redis, "t1", FAST, attempt=2)
    assert done.attempt == 2 and await redis.hget(keys.source("t1"), "state") == "done"
    await redis.aclose()


async def test_poison_fails_every_attempt_and_missing_source_is_poison(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    await _source(redis, "p1")
    poison = FAST.model_copy(update={"poison_rate": 1.0})
    for attempt in (1, 2, 3):
        with pytest.raises(PoisonBackfillError):
            await run_backfill(redis, "p1", poison, attempt=attempt)
    with pytest.raises(SourceMissingError):
        await run_backfill(redis, "never-created", FAST)
    assert not await redis.exists(keys.source("never-created"))
    await redis.aclose()

"""GracefulWorker.finish_job against real Redis: arq's finish and the job's lifecycle end land together.

A success with nothing to keep (our worker: keep_result 0) is one script; any other finish (a result kept,
a cron job's in-progress key kept) is arq's MULTI/EXEC with the lifecycle end added. Both must leave what
arq's own finish leaves, plus the record "done".
"""

from __future__ import annotations

import time

import pytest
from arq.constants import (
    abort_jobs_ss,
    default_queue_name,
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)
from redis.asyncio import Redis as AsyncRedis

from service import keys, lifecycle
from service.settings import Settings
from service.worker import build_worker
from service.worker_conn import connect
from service.worker_runtime import GracefulWorker


async def _claimed(client: AsyncRedis, job_id: str) -> None:
    """A job as arq leaves it while it runs, and its attempt's start record."""
    await client.zadd(default_queue_name, {job_id: 1})
    await client.set(job_key_prefix + job_id, b"payload")
    await client.set(in_progress_key_prefix + job_id, b"1", px=60_000)
    await client.set(retry_key_prefix + job_id, 1)
    await client.zadd(abort_jobs_ss, {job_id: 1})
    await client.hset(keys.source("s-" + job_id), mapping={"user_id": "u", "name": "n", "state": "running"})
    async with client.pipeline(transaction=False) as pipe:
        lifecycle.add_start(pipe, job_id, "s-" + job_id, 1, time.time(), 3600, 60)
        await pipe.execute()


def _done_end(job_id: str) -> tuple[list[str], list[str]]:
    attempt = {
        "try": 1,
        "start_ts": time.time() - 0.01,
        "end_ts": time.time(),
        "outcome": "success",
        "error": None,
    }
    return lifecycle.end_call(
        job_id,
        "s-" + job_id,
        0,
        attempt,
        "done",
        3600,
        "completed",
        source_fields={"state": "done", "pages": 0},
    )


@pytest.fixture
async def worker(redis_url: str):
    w: GracefulWorker = build_worker(Settings(redis_url=redis_url))
    w._pool = await connect(w.state.settings)
    yield w
    await w._pool.aclose()


@pytest.mark.parametrize(
    "case, result_data, keep_in_progress",
    [("one script", None, None), ("result kept", b"r", None), ("in-progress kept", None, 5.0)],
)
async def test_finish_removes_the_job_as_arq_does_and_records_it_done(
    worker: GracefulWorker,
    redis_url: str,
    case: str,
    result_data: bytes | None,
    keep_in_progress: float | None,
) -> None:
    client = AsyncRedis.from_url(redis_url)
    job_id = "j-" + case.replace(" ", "-")
    try:
        await _claimed(client, job_id)
        worker.state.finish_ends[job_id] = _done_end(job_id)
        await worker.finish_job(job_id, True, result_data, 60.0, False, None, keep_in_progress)
        assert job_id not in worker.state.finish_ends
        # arq's part
        assert await client.zscore(default_queue_name, job_id) is None
        assert await client.zscore(abort_jobs_ss, job_id) is None
        assert not await client.exists(job_key_prefix + job_id, retry_key_prefix + job_id)
        kept = await client.pttl(in_progress_key_prefix + job_id)
        assert (kept == -2) if keep_in_progress is None else (0 < kept <= 5_000)
        assert (await client.get(result_key_prefix + job_id)) == result_data
        # ours, in the same step
        record = await client.hgetall(keys.job(job_id))
        assert record[b"state"] == b"done" and float(record[b"done_ts"]) > 0
        assert await client.zscore(lifecycle.RUNNING, job_id) is None
        assert int(await client.hget(keys.STATS, "completed")) >= 1
        source = await client.hgetall(keys.source("s-" + job_id))
        assert source[b"state"] == b"done" and source[b"pages"] == b"0" and source[b"user_id"] == b"u"
        assert 0 < await client.ttl(keys.source("s-" + job_id)) <= 3600
        [entry] = await client.lrange(keys.job_attempts(job_id), 0, -1)
        assert b'"outcome":"success"' in entry
    finally:
        await client.aclose()


async def test_a_finish_without_a_lifecycle_end_is_arqs_own(worker: GracefulWorker, redis_url: str) -> None:
    client = AsyncRedis.from_url(redis_url)
    try:
        await _claimed(client, "plain")
        await worker.finish_job("plain", True, None, 0, False, None, None)
        assert await client.zscore(default_queue_name, "plain") is None
        assert not await client.exists(job_key_prefix + "plain", in_progress_key_prefix + "plain")
        assert (await client.hget(keys.job("plain"), "state")) == b"running"  # nothing of ours was written
    finally:
        await client.aclose()


async def test_a_finish_whose_round_trip_fails_is_retried_and_counted_once(
    worker: GracefulWorker, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 25: the finish script is retried within the claim; a repeat of an applied one counts nothing."""
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from service.worker_conn import LoopLateTimeoutError

    client = AsyncRedis.from_url(redis_url)
    job_id = "j-retry"
    await _claimed(client, job_id)
    real_eval = worker.pool.eval
    calls: list[int] = []

    async def flaky_eval(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 1:
            await real_eval(*args, **kwargs)  # applied, but its reply "timed out"
            raise LoopLateTimeoutError("late")
        if len(calls) == 2:
            raise RedisTimeoutError("redis did not answer")
        return await real_eval(*args, **kwargs)

    monkeypatch.setattr(worker.pool, "eval", flaky_eval)
    worker.state.finish_ends[job_id] = _done_end(job_id)
    await worker.finish_job(job_id, True, None, 0, False, None, None)
    assert len(calls) == 3
    assert await client.hget(keys.STATS, "completed") == b"1"  # the applied first try counted, the repeat not
    assert await client.hget(keys.job(job_id), "state") == b"done"
    assert await client.zscore(default_queue_name, job_id) is None
    await client.aclose()

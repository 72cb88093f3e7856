"""The one-round-trip enqueue: arq-compatible bytes and expiry, run by a STOCK arq worker; dedupe, idempotency,
redrive with fresh tries."""

from __future__ import annotations

import pickle
import time
from typing import Any

import pytest
from arq.connections import ArqRedis, RedisSettings
from arq.constants import default_queue_name, job_key_prefix, result_key_prefix, retry_key_prefix
from arq.jobs import Job, JobStatus
from arq.worker import Worker, func
from redis.asyncio import Redis

from service import dlq, keys
from service.backfill import run_backfill
from service.enqueue import enqueue_backfill
from service.settings import WorkProfile
from service.sources import Idempotency

# arq 0.28's Worker.close() calls redis-py's deprecated close(): arq's warning, not ours
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")

WORK = WorkProfile(pages=2, io_ms=1.0, io_sigma=0.2, cpu_ms=0.2, seed=5)
FIELDS = {"user_id": "u", "name": "n", "mode": "offload", "state": "pending", "attempts": 0}


async def backfill_source(ctx: dict[str, Any], source_id: str) -> str:
    """A test job with the production function name, run by a stock arq worker."""
    ctx.setdefault("seen", []).append((source_id, ctx["job_try"]))
    return (await run_backfill(ctx["redis"], source_id, WORK, ctx["job_try"])).result_digest


def stock_worker(redis_url: str, **kwargs: Any) -> Worker:
    """arq's own Worker, unmodified, in burst mode."""
    return Worker(
        functions=[func(backfill_source, name="backfill_source")],
        redis_settings=RedisSettings.from_dsn(redis_url),
        burst=True,
        poll_delay=0.01,
        handle_signals=False,
        keep_result=60,
        **kwargs,
    )


async def _enqueue(redis: Redis, source_id: str, job_id: str, **kw: Any) -> Any:
    return await enqueue_backfill(
        redis,
        source_id=source_id,
        job_id=job_id,
        now_ms=int(time.time() * 1000),
        source_fields=FIELDS,
        record_ttl_s=600,
        **kw,
    )


async def test_payload_matches_arq_enqueue_job_without_its_expiry(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    arq = ArqRedis.from_url(redis_url)
    res = await _enqueue(redis, "src-1", "job-ours")
    assert res.outcome == "enqueued"
    await arq.enqueue_job("backfill_source", "src-1", _job_id="job-arq")
    ours = pickle.loads(await redis.get(job_key_prefix + "job-ours"))
    theirs = pickle.loads(await redis.get(job_key_prefix + "job-arq"))
    assert abs(ours.pop("et") - theirs.pop("et")) < 60_000
    assert ours == theirs == {"t": None, "f": "backfill_source", "a": ("src-1",), "k": {}}
    pttl_ours, pttl_theirs = (
        await redis.pttl(job_key_prefix + "job-ours"),
        await redis.pttl(job_key_prefix + "job-arq"),
    )
    # arq's enqueue gives the payload a 24 h expiry; ours none: a queued job must not vanish (issue 14.2)
    assert pttl_ours == -1 and 86_000_000 < pttl_theirs <= 86_400_000
    info = await Job("job-ours", arq).info()
    assert info is not None and info.function == "backfill_source" and info.args == ("src-1",)
    assert await Job("job-ours", arq).status() == JobStatus.queued
    assert await redis.zscore(default_queue_name, "job-ours") is not None
    await redis.aclose()
    await arq.aclose()


async def test_stock_arq_worker_runs_our_job(redis_url: str) -> None:
    redis = Redis.from_url(redis_url, decode_responses=True)
    for i in range(3):
        await _enqueue(redis, f"src-{i}", f"job-{i}")
    worker = stock_worker(redis_url)
    try:
        await worker.main()
        assert worker.jobs_complete == 3 and worker.jobs_failed == 0
        arq = ArqRedis.from_url(redis_url)
        result = await Job("job-0", arq).result_info()
        await arq.aclose()
    finally:
        await worker.close()
    assert (
        result is not None
        and result.success
        and result.result == await redis.hget(keys.source("src-0"), "result_digest")
    )
    assert await redis.hget(keys.source("src-2"), "state") == "done"
    assert await redis.zcard(default_queue_name) == 0
    record = await redis.hgetall(keys.job("job-1"))
    assert record["source_id"] == "src-1" and record["state"] == "pending"  # the worker half updates it
    assert await redis.hget(keys.STATS, "enqueued") == "3"
    await redis.aclose()


async def test_one_round_trip_writes_source_record_and_ttls(redis_url: str) -> None:
    redis = Redis.from_url(redis_url, decode_responses=True)
    await _enqueue(redis, "src-a", "job-a")
    assert await redis.hgetall(keys.source("src-a")) == {k: str(v) for k, v in FIELDS.items()}
    assert 0 < await redis.ttl(keys.source("src-a")) <= 600
    assert 0 < await redis.ttl(keys.job("job-a")) <= 600
    await redis.aclose()


async def test_duplicate_job_id_and_idempotency_key_write_nothing_twice(redis_url: str) -> None:
    redis = Redis.from_url(redis_url, decode_responses=True)
    idem = Idempotency("offload:k", "hash")
    first = await _enqueue(redis, "src-1", "job-1", idem=idem)
    again = await _enqueue(redis, "src-2", "job-2", idem=idem)
    dup = await _enqueue(redis, "src-3", "job-1")
    assert (first.outcome, again.outcome, dup.outcome) == ("enqueued", "idempotent", "duplicate")
    assert (again.source_id, again.job_id, again.body_hash) == ("src-1", "job-1", "hash")
    assert await redis.zrange(default_queue_name, 0, -1) == ["job-1"]
    assert not await redis.exists(keys.source("src-2"), keys.source("src-3"), keys.job("job-2"))
    assert await redis.hget(keys.STATS, "enqueued") == "1"
    assert 0 < await redis.ttl(keys.idempotency("offload:k"))
    await redis.aclose()


async def test_redrive_same_job_id_fresh_tries_and_stock_worker_reruns_it(redis_url: str) -> None:
    redis = Redis.from_url(redis_url, decode_responses=True)
    await _enqueue(redis, "src-r", "job-r")
    worker = stock_worker(redis_url)
    try:
        await worker.main()
    finally:
        await worker.close()
    assert await redis.hget(keys.source("src-r"), "attempts") == "1"
    # a stale try counter (arq deletes it when a job finishes, but not when it is cut short), arq's result
    await redis.set(retry_key_prefix + "job-r", 5)
    assert await redis.exists(result_key_prefix + "job-r")
    async with redis.pipeline(transaction=True) as pipe:
        dlq.add_park(pipe, {"job_id": "job-r", "source_id": "src-r", "failed_ts": time.time()})
        await pipe.execute()
    redriven = await dlq.redrive(redis, "job-r", record_ttl_s=600)
    assert redriven["redrives"] == 1 and not redriven.get("already_queued")
    assert not await redis.exists(retry_key_prefix + "job-r")  # fresh tries
    record = await redis.hgetall(keys.job("job-r"))
    assert record["redrives"] == "1" and record["state"] == "pending" and float(record["redrive_ts"]) > 0
    stats = await redis.hgetall(keys.STATS)
    assert stats["enqueued"] == "1" and stats["redriven"] == "1"
    assert await redis.hget(keys.source("src-r"), "state") == "pending"
    worker = stock_worker(redis_url)
    try:
        await worker.main()
        assert worker.jobs_complete == 1
    finally:
        await worker.close()
    assert await redis.hget(keys.source("src-r"), "state") == "done"
    assert await redis.hget(keys.source("src-r"), "attempts") == "1"  # job_try counted from 1 again
    await redis.aclose()


async def test_enqueue_is_one_round_trip(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    await _enqueue(redis, "warm", "warm")  # the first call may load the script (NOSCRIPT -> SCRIPT LOAD)
    sent: list[str] = []
    original = redis.execute_command

    def counting(*args: Any, **kwargs: Any) -> Any:
        sent.append(str(args[0]))
        return original(*args, **kwargs)

    redis.execute_command = counting  # type: ignore[method-assign]
    await _enqueue(redis, "src-1", "job-1", idem=Idempotency("offload:one", "h"))
    await _enqueue(redis, "src-2", "job-2", idem=Idempotency("offload:one", "h"))  # the idempotent replay too
    assert sent == ["EVALSHA", "EVALSHA"]
    await redis.aclose()

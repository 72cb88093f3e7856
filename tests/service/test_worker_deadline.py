"""The job's deadline (issue 14.1): ours fires first, from the job's start, with a validated margin before
arq's; a cancellation the worker did not ask for becomes a retry, never a silent end of the job."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime

import pytest
import redis
from arq.worker import Retry
from pydantic import ValidationError
from redis.asyncio import Redis as AsyncRedis

from service import keys
from service.enqueue import enqueue_backfill
from service.lifecycle import export_records
from service.settings import Settings, WorkProfile
from service.worker import backfill_source
from service.worker_state import WorkerState
from tests.service import test_worker as support

start_worker = support.start_worker  # fixture


@pytest.mark.parametrize("margin_s", ["0", "0.2"])
def test_a_margin_that_lets_arqs_timeout_fire_first_is_refused(margin_s: str, start_worker) -> None:
    with pytest.raises(ValidationError, match="orphan_margin_s"):
        Settings(orphan_margin_s=float(margin_s))
    worker = start_worker(OFFLOAD_ORPHAN_MARGIN_S=margin_s)
    assert worker.proc.wait(20) == 2
    assert "error: invalid worker setting orphan_margin_s" in worker.log()


async def test_a_cancellation_we_did_not_ask_for_is_a_retry(redis_url: str, client: redis.Redis) -> None:
    redis_ = AsyncRedis.from_url(redis_url)
    now_ms = int(time.time() * 1000)
    fields = {"user_id": "u", "name": "n", "state": "pending", "created_ts": now_ms / 1000}
    await enqueue_backfill(
        redis_, source_id="s", job_id="j", now_ms=now_ms, source_fields=fields, record_ttl_s=600
    )
    cfg = Settings(redis_url=redis_url, work=WorkProfile(pages=1, io_ms=10_000, io_sigma=0))
    ctx = {
        "redis": redis_,
        "ob": WorkerState(cfg, "w-test", random.Random(1)),
        "job_id": "j",
        "job_try": 1,
        "enqueue_time": datetime.now(UTC),
    }
    task = asyncio.create_task(backfill_source(ctx, "s"))
    for _ in range(200):
        if await redis_.hget(keys.job("j"), "state") == b"running":
            break
        await asyncio.sleep(0.01)
    task.cancel()  # e.g. arq's own timeout, or anything but our shutdown
    with pytest.raises(Retry):
        await task
    [rec] = export_records(client, ["j"])
    assert rec["state"] == "pending" and [a["outcome"] for a in rec["attempts"]] == ["retry"]
    assert "cancelled" in rec["attempts"][0]["error"]
    await redis_.aclose()

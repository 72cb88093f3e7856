"""Sync and offload run the same backfill and store the same result (real API, real Redis, real workers);
sync's inline retries and its answer when the upstream fails."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
import redis
from arq.connections import RedisSettings
from arq.worker import Worker, func
from redis.asyncio import Redis

from service import keys
from service.backfill import run_backfill
from service.settings import WorkProfile
from tests.service.conftest import FAST_WORK_ENV, REPO

pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")  # arq's close()

# the API's work profile (tests/service/conftest.py FAST_WORK_ENV), for the in-process worker
API_WORK = WorkProfile(
    pages=int(FAST_WORK_ENV["OFFLOAD_PAGES"]),
    io_ms=float(FAST_WORK_ENV["OFFLOAD_IO_MS"]),
    io_sigma=float(FAST_WORK_ENV["OFFLOAD_IO_SIGMA"]),
    cpu_ms=float(FAST_WORK_ENV["OFFLOAD_CPU_MS"]),
    seed=int(FAST_WORK_ENV["OFFLOAD_SEED"]),
)
BODY = {"user_id": "user-42", "name": "crm"}


async def backfill_source(ctx: dict[str, Any], source_id: str) -> str:
    """The production function name, the shared backfill, under a stock arq worker."""
    return (await run_backfill(ctx["redis"], source_id, API_WORK, ctx["job_try"])).result_digest


async def _stored(redis: Redis, source_id: str) -> tuple[str, dict[str, str]]:
    source = await redis.hgetall(keys.source(source_id))
    return source["result_digest"], await redis.hgetall(keys.source_data(source_id))


async def test_sync_and_offload_store_the_same_result_stock_arq_worker(api_url: str, redis_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url) as c:
        sync = (await c.post("/sync/sources", json=BODY)).json()
        offload = (await c.post("/offload/sources", json=BODY)).json()
        other = (await c.post("/sync/sources", json={**BODY, "name": "erp"})).json()
    worker = Worker(
        functions=[func(backfill_source, name=keys.JOB_FUNCTION)],
        redis_settings=RedisSettings.from_dsn(redis_url),
        burst=True,
        poll_delay=0.01,
        handle_signals=False,
    )
    try:
        await worker.main()
        assert worker.jobs_complete == 1
    finally:
        await worker.close()
    redis = Redis.from_url(redis_url, decode_responses=True)
    sync_digest, sync_data = await _stored(redis, sync["source_id"])
    off_digest, off_data = await _stored(redis, offload["source_id"])
    other_digest, _ = await _stored(redis, other["source_id"])
    await redis.aclose()
    assert sync["source_id"] != offload["source_id"]
    assert sync_digest == off_digest == sync["result_digest"] and len(sync_data) == 3
    assert sync_data == off_data
    assert other_digest != sync_digest  # the result does depend on the input


def test_sync_and_offload_store_the_same_result_through_service_worker(api_url: str, redis_url: str) -> None:
    """End to end: `python -m service.worker` (the real worker) against the same API and Redis."""
    with httpx.Client(base_url=api_url) as c:
        sync = c.post("/sync/sources", json=BODY).json()
        offload = c.post("/offload/sources", json=BODY).json()
        env = {**_clean_env(), **FAST_WORK_ENV, "OFFLOAD_REDIS_URL": redis_url}
        worker = subprocess.Popen(
            [sys.executable, "-m", "service.worker"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 30
            state = ""
            while time.monotonic() < deadline:
                got = c.get(f"/sources/{offload['source_id']}").json()
                state = got["state"]
                if state in ("done", "dead"):
                    break
                time.sleep(0.1)
        finally:
            worker.terminate()
            _, err = worker.communicate(timeout=30)
        assert state == "done", err.decode(errors="replace")[-2000:]
        sync_view = c.get(f"/sources/{sync['source_id']}").json()
    assert got["result_digest"] == sync_view["result_digest"] == sync["result_digest"]
    assert got["attempts"] == 1 and got["mode"] == "offload" and sync_view["mode"] == "sync"
    assert worker.returncode == 0


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_") and k != "REDIS_URL"}


def test_sync_retries_transient_failures_inline(start_api) -> None:  # type: ignore[no-untyped-def]
    api = start_api(
        OFFLOAD_TRANSIENT_RATE="0.5",
        OFFLOAD_MAX_TRIES="40",
        OFFLOAD_RETRY_BASE_S="0.001",
        OFFLOAD_RETRY_CAP_S="0.01",
    )
    with httpx.Client(base_url=api.url) as c:
        answers = [c.post("/sync/sources", json={**BODY, "name": f"n{i}"}) for i in range(16)]
    assert all(a.status_code == 201 and a.json()["state"] == "done" for a in answers), [
        a.text for a in answers
    ]
    attempts = [a.json()["attempts"] for a in answers]
    assert max(attempts) > 1  # P(no retry in 16 sources at 50%) = 2**-16


def test_sync_poison_answers_502_and_marks_source_dead(start_api) -> None:  # type: ignore[no-untyped-def]
    api = start_api(OFFLOAD_POISON_RATE="1")
    with httpx.Client(base_url=api.url) as c:
        resp = c.post("/sync/sources", json=BODY, headers={"Idempotency-Key": "p"})
        assert resp.status_code == 502 and resp.json()["detail"].startswith("backfill failed: poison")
        again = c.post("/sync/sources", json=BODY, headers={"Idempotency-Key": "p"})
        assert again.status_code == 502  # the replay tells the same story, no second backfill
        got = c.get(f"/sources/{resp.headers['x-source-id']}").json()
    assert (
        got["state"] == "dead"
        and got["attempts"] == 1
        and got["dead_ts"] > 0
        and "poison" in got["last_error"]
    )
    r = redis.Redis.from_url(api.env["OFFLOAD_REDIS_URL"])
    assert (
        len(list(r.scan_iter(match=keys.source("*"), _type="hash"))) <= 2
    )  # one source (+ its partial data)
    r.close()

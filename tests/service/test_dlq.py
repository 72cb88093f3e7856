"""The DLQ store and `offload-bench dlq` against real Redis: list, show, redrive (one, --all), purge, errors."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import redis
from arq.jobs import deserialize_job_raw
from redis.asyncio import Redis as AsyncRedis
from typer.testing import CliRunner

from bench.cli import app
from service import dlq, keys
from tests.service import test_worker as support
from tests.service.test_worker import _redrive, all_in_state, enqueue, wait_for

start_worker = support.start_worker  # fixture


def park(client: redis.Redis, job_id: str, source_id: str, failed_ts: float, **extra: Any) -> dict[str, Any]:
    """Park a record the way the worker does (same add_park), with a lifecycle record in state dead."""
    rec = {
        "job_id": job_id,
        "function": keys.JOB_FUNCTION,
        "source_id": source_id,
        "args": [source_id],
        "kwargs": {},
        "error_type": "PoisonBackfillError",
        "error": f"poison failure of {source_id}",
        "traceback": "Traceback (most recent call last):\n  ...\nPoisonBackfillError: boom\n",
        "attempts": 1,
        "enqueued_ts": failed_ts - 1,
        "failed_ts": failed_ts,
        "redrives": 0,
        **extra,
    }
    with client.pipeline(transaction=True) as pipe:
        dlq.add_park(pipe, rec)
        pipe.hset(keys.job(job_id), mapping={"source_id": source_id, "state": "dead", "redrives": 0})
        pipe.hset(keys.source(source_id), mapping={"user_id": "u", "name": source_id, "state": "dead"})
        pipe.set(f"arq:retry:{job_id}", 5)  # arq's try counter from the failed run: a redrive resets it
        pipe.execute()
    return rec


@pytest.fixture
def cli(redis_url: str):
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(app, ["dlq", *args, "--redis-url", redis_url], input=input)

    return invoke


def test_records_roundtrip_newest_first(redis_url, client):
    now = time.time()
    park(client, "j1", "s1", now - 10)
    park(client, "j2", "s2", now)

    async def run() -> tuple[int, list[dict[str, Any]], dict[str, Any] | None]:
        c = AsyncRedis.from_url(redis_url)
        try:
            return await dlq.count(c), await dlq.list_records(c), await dlq.show(c, "j1")
        finally:
            await c.aclose()

    n, listed, shown = asyncio.run(run())
    assert n == 2 and [r["job_id"] for r in listed] == ["j2", "j1"]
    assert shown is not None and shown["error_type"] == "PoisonBackfillError" and shown["args"] == ["s1"]


def test_long_tracebacks_are_cut_to_keep_records_small(client):
    rec = park(client, "big", "s", time.time(), traceback="x" * 100_000)
    stored = json.loads(client.hget(keys.DLQ, "big"))
    assert len(stored["traceback"]) <= dlq.TRACEBACK_MAX_CHARS + 10 and stored["error"] == rec["error"]


def test_cli_list_and_show(cli, client):
    park(client, "job-a", "src-a", time.time())
    res = cli("list")
    assert res.exit_code == 0, res.output
    assert "job-a" in res.output and "src-a" in res.output and "1 job(s)" in res.output
    res = cli("show", "job-a")
    assert res.exit_code == 0
    assert json.loads(res.output.split("Traceback")[0])["source_id"] == "src-a"
    assert "PoisonBackfillError: boom" in res.output


def test_cli_redrive_one_enqueues_fresh_tries_with_the_same_job_id(cli, client):
    park(client, "job-a", "src-a", time.time())
    park(client, "job-b", "src-b", time.time())
    res = cli("redrive", "job-a")
    assert res.exit_code == 0, res.output
    assert "redriven job-a (redrives: 1)" in res.output
    assert client.zscore("arq:queue", "job-a") is not None
    stored = client.get("arq:job:job-a")
    assert stored is not None
    assert not client.exists("arq:retry:job-a")  # fresh tries
    assert client.hget(keys.job("job-a"), "redrives") == b"1"
    assert client.hget(keys.job("job-a"), "state") == b"pending"
    assert client.hget(keys.source("src-a"), "state") == b"pending"
    assert not client.hexists(keys.DLQ, "job-a") and client.zscore(keys.DLQ_INDEX, "job-a") is None
    assert client.hexists(keys.DLQ, "job-b")
    # the original payload, as the API enqueues it, at try 1 again
    function, args, kwargs, job_try, _ = deserialize_job_raw(stored)
    assert (function, args, kwargs, job_try) == (keys.JOB_FUNCTION, ("src-a",), {}, None)


def test_cli_redrive_all_and_purge(cli, client):
    for i in range(5):
        park(client, f"job-{i}", f"src-{i}", time.time())
    res = cli("redrive", "--all")
    assert res.exit_code == 0, res.output
    assert "redriven 5 job(s)" in res.output
    assert client.zcard("arq:queue") == 5 and client.hlen(keys.DLQ) == 0
    assert int(client.hget(keys.STATS, "redriven")) == 5
    park(client, "job-x", "src-x", time.time())
    res = cli("purge")  # not a terminal: refuses without --yes
    assert res.exit_code == 2 and "pass --yes" in res.output
    assert client.hlen(keys.DLQ) == 1
    res = cli("purge", "--yes")
    assert res.exit_code == 0 and "purged 1 record(s)" in res.output
    assert client.hlen(keys.DLQ) == 0 and not client.exists(keys.DLQ_INDEX)


def test_cli_errors_are_one_line_exit_2(cli):
    for args in (("show", "nope"), ("redrive", "nope"), ("redrive",), ("redrive", "x", "--all")):
        res = cli(*args)
        assert res.exit_code == 2, (args, res.output)
        assert res.output.startswith("error: ") and res.output.count("\n") == 1
        assert "Traceback" not in res.output
    runner = CliRunner()
    res = runner.invoke(app, ["dlq", "list", "--redis-url", "redis://127.0.0.1:1/0"])
    assert res.exit_code == 2 and res.output.startswith("error: cannot reach Redis")


def test_redrive_waits_for_arq_to_finish_the_parking_attempt(redis_url, client):
    park(client, "busy", "s", time.time())
    client.set("arq:in-progress:busy", 1, px=300)  # arq has not run finish_job yet

    async def run() -> dict[str, Any]:
        c = AsyncRedis.from_url(redis_url)
        try:
            return await dlq.redrive(c, "busy")
        finally:
            await c.aclose()

    started = time.monotonic()
    rec = asyncio.run(run())
    assert rec["redrives"] == 1 and time.monotonic() - started >= 0.2
    assert client.zscore("arq:queue", "busy") is not None


def test_the_record_holds_what_a_redrive_needs_after_the_source_expired(redis_url, client, start_worker):
    # issue 14.3: the source hash has a TTL (record_ttl_s, as low as 60 s); the DLQ record has none
    poisoned = start_worker(OFFLOAD_POISON_RATE="1")
    [job_id] = enqueue(redis_url, ["gone-src"])
    wait_for(all_in_state(client, [job_id], "dead"), 15, "job dead-lettered", poisoned)
    assert poisoned.signal_and_wait() == 0
    client.delete(keys.source("gone-src"), keys.source_data("gone-src"))  # the source's TTL ran out
    fixed = start_worker()
    asyncio.run(_redrive(redis_url, job_id))
    wait_for(all_in_state(client, [job_id], "done"), 15, "redriven job done", fixed)
    source = client.hgetall(keys.source("gone-src"))
    assert source[b"user_id"] == b"u1" and source[b"name"] == b"gone-src" and source[b"state"] == b"done"


class _RefailsAtOnce(AsyncRedis):
    """A real client that lets a worker park the job again right after the redrive's first script call: the
    fastest possible poison re-failure, at the worst moment."""

    async def evalsha(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        reply = await super().evalsha(*args, **kwargs)
        async with self.pipeline(transaction=True) as pipe:
            dlq.add_park(
                pipe, {"job_id": "fast", "source_id": "s", "error": "again", "failed_ts": time.time()}
            )
            await pipe.execute()
        return reply


def test_redrive_is_one_atomic_step(redis_url, client):
    # issue 14.4: a redrive that enqueued first and deleted the record after dropped the new failure's record
    park(client, "fast", "s", time.time() - 5)

    async def run() -> dict[str, Any]:
        c = _RefailsAtOnce.from_url(redis_url)
        try:
            return await dlq.redrive(c, "fast")
        finally:
            await c.aclose()

    asyncio.run(run())
    assert client.zscore("arq:queue", "fast") is not None
    again = client.hget(keys.DLQ, "fast")
    assert again is not None and json.loads(again)["error"] == "again"  # the new failure is kept

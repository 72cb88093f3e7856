"""A job's payload never vanishes silently (issue 14.2): no expiry while queued or retrying; an expired,
undeserialisable or unknown-function job is parked in the DLQ; a Redis that may evict is refused or warned of."""

from __future__ import annotations

import asyncio
import base64
import os
import pickle
from typing import Any

import pytest
import redis
from arq.connections import ArqRedis

from service import keys
from tests.service import test_worker as support
from tests.service.test_worker import all_in_state, enqueue, records, wait_for

start_worker = support.start_worker  # fixture


def test_queued_and_retrying_payloads_do_not_expire(redis_url, client, start_worker):
    [ours] = enqueue(redis_url, ["p1"])
    assert client.pttl(f"arq:job:{ours}") == -1  # the API's enqueue: no expiry at all

    async def arq_enqueue() -> None:
        arq = ArqRedis.from_url(redis_url)
        await arq.enqueue_job(keys.JOB_FUNCTION, "p2", _job_id="job-arq")
        await arq.aclose()

    client.hset(keys.source("p2"), mapping={"user_id": "u", "name": "p2"})
    asyncio.run(arq_enqueue())  # arq's own enqueue sets a 24 h expiry: the worker drops it while live
    worker = start_worker(
        OFFLOAD_TRANSIENT_RATE="1", OFFLOAD_MAX_TRIES="9", OFFLOAD_RETRY_BASE_S="30", OFFLOAD_RETRY_CAP_S="30"
    )
    retried = lambda: all(  # noqa: E731
        r["attempts"] and r["attempts"][0]["outcome"] == "retry" for r in records(client, [ours, "job-arq"])
    )
    wait_for(retried, 15, "both jobs retrying", worker)
    assert client.pttl(f"arq:job:{ours}") == -1 and client.pttl("arq:job:job-arq") == -1


def test_expired_undeserialisable_and_unknown_function_jobs_are_parked(redis_url, client, start_worker):
    [expired] = enqueue(redis_url, ["gone"])
    client.delete(f"arq:job:{expired}")  # what an expiry or an eviction does
    client.set("arq:job:garbage", b"\x80\x05not a pickle")
    client.zadd("arq:queue", {"garbage": 1})

    async def foreign() -> None:
        arq = ArqRedis.from_url(redis_url)
        await arq.enqueue_job("no_such_function", 1, _job_id="foreign")
        await arq.aclose()

    asyncio.run(foreign())
    worker = start_worker()
    wait_for(lambda: client.hlen(keys.DLQ) == 3, 15, "three DLQ records", worker)
    recs = {r["job_id"]: r for r in support.asyncio_show_all(redis_url)}
    assert recs[expired]["source_id"] == "gone" and "expired" in recs[expired]["error"]
    assert recs[expired]["function"] == keys.JOB_FUNCTION and recs[expired]["args"] == ["gone"]
    assert base64.b64decode(recs["garbage"]["payload_b64"]) == b"\x80\x05not a pickle"
    assert recs["foreign"]["function"] == "no_such_function" and "not found" in recs["foreign"]["error"]
    assert recs["foreign"]["payload_b64"]
    wait_for(all_in_state(client, [expired], "dead"), 5, "the expired job's record says dead", worker)
    assert client.zcard("arq:queue") == 0 and int(client.hget(keys.STATS, "dead_lettered")) == 3


@pytest.mark.parametrize(("policy", "refused"), [("allkeys-lru", True), ("volatile-lru", False)])
def test_a_redis_that_can_evict_is_refused_or_warned_of(
    client: redis.Redis, start_worker, policy: str, refused: bool
) -> None:
    old = client.config_get("maxmemory*")
    client.config_set("maxmemory", "1gb")
    client.config_set("maxmemory-policy", policy)
    try:
        worker = start_worker()
        if refused:
            assert worker.proc.wait(20) == 2
            assert f"maxmemory-policy {policy}" in worker.log() and "error:" in worker.log()
        else:
            wait_for(lambda: bool(worker.events("redis may evict keys")), 15, "the eviction warning", worker)
            assert worker.proc.poll() is None
    finally:
        client.config_set("maxmemory-policy", old["maxmemory-policy"])
        client.config_set("maxmemory", old["maxmemory"])


class _Mkdir:
    """Unpickling this calls os.mkdir(path): what a hostile payload in arq:job:* could do."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.mkdir, (self.path,))


def test_the_worker_never_unpickles_code_from_redis(redis_url, client, start_worker, tmp_path):
    # issue 14.7: our payloads are plain data (str, int, tuple, dict); a pickle naming any global is refused
    marker = tmp_path / "pwned"
    hostile = {"t": None, "f": keys.JOB_FUNCTION, "a": (_Mkdir(str(marker)),), "k": {}, "et": 1}
    client.set("arq:job:hostile", pickle.dumps(hostile))
    client.zadd("arq:queue", {"hostile": 1})
    [ours] = enqueue(redis_url, ["fine"])  # and our own jobs still run
    worker = start_worker()
    wait_for(lambda: client.hexists(keys.DLQ, "hostile"), 15, "the hostile job parked", worker)
    wait_for(all_in_state(client, [ours], "done"), 15, "our job done", worker)
    assert not marker.exists()

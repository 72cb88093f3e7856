"""Lifecycle readers against real Redis: export_records (JOB_KEYS, missing, chunks) and queue_depth."""

from __future__ import annotations

import json
import time

import pytest

from runfolder.schema import JOB_KEYS, QUEUE_COLUMNS
from service import keys, lifecycle
from tests.service import test_worker as support
from tests.service.test_worker import enqueue, in_progress_keys, wait_for

start_worker = support.start_worker  # fixture


def test_export_records_reads_what_the_worker_writes_and_marks_missing(client):
    now = time.time()
    with client.pipeline(transaction=False) as pipe:
        pipe.hset(
            keys.job("a"),
            mapping={
                "source_id": "s",
                "enqueued_ts": now - 2,
                "state": "pending",
                "executions": 0,
                "redrives": 0,
            },
        )
        lifecycle.add_start(pipe, "a", "s", 1, now - 1, 3600, 10)
        pipe.execute()
    with client.pipeline(transaction=True) as pipe:
        attempt = {"try": 1, "start_ts": now - 1, "end_ts": now, "outcome": "success", "error": None}
        lifecycle.add_end(pipe, "a", "s", 0, attempt, "done", 3600, "completed")
        pipe.execute()
    rec, missing = lifecycle.export_records(client, ["a", "zzz"])
    assert tuple(rec) == lifecycle.RECORD_KEYS and tuple(missing) == lifecycle.RECORD_KEYS
    assert set(JOB_KEYS) <= set(lifecycle.RECORD_KEYS)  # the harness's export maps every contract key
    assert rec["state"] == "done" and rec["source_id"] == "s" and rec["enqueued_ts"] == pytest.approx(now - 2)
    assert rec["attempts"] == [attempt] and rec["done_ts"] == pytest.approx(now) and rec["dead_ts"] is None
    assert rec["executions"] == 1 and rec["redrives"] == 0
    assert 0 < client.ttl(keys.job("a")) <= 3600 and 0 < client.ttl(keys.job_attempts("a")) <= 3600
    assert int(client.hget(keys.STATS, "completed")) == 1 and int(client.hget(keys.STATS, "executions")) == 1
    assert missing == {
        "job_id": "zzz",
        "source_id": None,
        "enqueued_ts": None,
        "state": "missing",
        "attempts": [],
        "done_ts": None,
        "dead_ts": None,
        "redrives": 0,
        "executions": 0,
    }
    json.dumps(rec)  # one JSON line of jobs/<mode>.jsonl


def test_export_records_spans_chunks_in_order(client):
    ids = [f"j{i}" for i in range(lifecycle.EXPORT_CHUNK * 2 + 7)]
    with client.pipeline(transaction=False) as pipe:
        for i, jid in enumerate(ids[::3]):
            pipe.hset(keys.job(jid), mapping={"source_id": f"s{i}", "state": "pending"})
        pipe.execute()
    out = list(lifecycle.export_records(client, iter(ids)))
    assert [r["job_id"] for r in out] == ids
    assert sum(r["state"] == "pending" for r in out) == len(ids[::3])
    assert sum(r["state"] == "missing" for r in out) == len(ids) - len(ids[::3])


def test_queue_depth_counts_ready_deferred_running_dlq_completed(client):
    now_ms = int(time.time() * 1000)
    client.zadd(
        "arq:queue", {"r1": now_ms - 1000, "r2": now_ms - 10, "run": now_ms - 500, "d1": now_ms + 60_000}
    )
    client.zadd(lifecycle.RUNNING, {"run": now_ms + 60_000, "stale": now_ms - 1})  # stale: an expired claim
    client.hset(keys.DLQ, "x", "{}")
    client.hset(keys.STATS, "completed", 7)
    depth = lifecycle.queue_depth(client)
    assert set(depth) == set(QUEUE_COLUMNS) - {"ts"}
    # a running job keeps its old score in arq:queue: it is in progress, not ready
    assert depth == {"ready": 2, "deferred": 1, "in_progress": 1, "dlq": 1, "completed": 7}


def test_queue_depth_matches_a_live_worker(redis_url, client, start_worker):
    worker = start_worker(OFFLOAD_PAGES="1", OFFLOAD_IO_MS="1500", OFFLOAD_IO_SIGMA="0", OFFLOAD_MAX_JOBS="2")
    enqueue(redis_url, ["q1", "q2", "q3"])
    # claimed (in-progress key) first, then started (RUNNING entry): wait for both
    running = lambda: len(in_progress_keys(client)) == 2 and client.zcard(lifecycle.RUNNING) == 2  # noqa: E731
    wait_for(running, 15, "two jobs running", worker)
    depth = lifecycle.queue_depth(client)
    assert depth == {"ready": 1, "deferred": 0, "in_progress": 2, "dlq": 0, "completed": 0}
    [(worker_id, beat_ms)] = client.zrange(keys.WORKERS, 0, -1, withscores=True)
    assert abs(beat_ms / 1000 - time.time()) < 30 and lifecycle.live_workers(client) == 1
    assert worker.signal_and_wait() == 0
    assert client.zscore(keys.WORKERS, worker_id) is None  # a stopped worker is not counted by /healthz
    assert lifecycle.live_workers(client) == 0

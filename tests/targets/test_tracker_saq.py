"""The saq tracker against a real Redis and SAQ's own stock worker (`saq worker.settings`, the example's jobs)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis
from saq import Queue

from analysis.jobs import match, reconcile
from analysis.load import jobs_table
from targets import Jobs
from targets.trackers import make_tracker
from targets.trackers.saq import SaqTracker
from tests.targets.conftest import REPO, VENV_BIN

SAQ_EXAMPLE = REPO / "examples" / "fastapi_saq"
TERMINAL = (b"complete", b"failed", b"aborted")


def _env(redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAQ_")}
    env.update(REDIS_URL=redis_url, WORK_MS="5", PYTHONUNBUFFERED="1")
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    return env


@pytest.fixture
def saq_worker(redis_url: str, tmp_path: Path) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Start SAQ's stock worker by its own command in the example folder (what the target starts); stopped
    (SIGTERM, waited on) at teardown."""
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        with (tmp_path / "worker.log").open("ab") as log:
            proc = subprocess.Popen(
                ["saq", "worker.settings", "-v"], cwd=SAQ_EXAMPLE, env=_env(redis_url), stdout=log, stderr=log
            )
        procs.append(proc)
        # SAQ's first sweep runs as the worker starts and aborts a job it finds in the active list still
        # "queued": one its own worker is dequeuing at that moment (10 jobs queued beforehand, 3 starts: once
        # 2 swept, one left "aborting"). Jobs are enqueued once that sweep has run (its lock key is set).
        client = redis.Redis.from_url(redis_url)
        deadline = time.monotonic() + 30
        while not client.exists("saq:default:sweep"):
            assert proc.poll() is None, (tmp_path / "worker.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "SAQ's worker did not start"
            time.sleep(0.05)
        client.close()
        return proc

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _enqueue(redis_url: str, ys: list[float], **options: Any) -> list[str]:
    """Jobs enqueued through SAQ's own Queue, as the example's API does; their keys."""

    async def go() -> list[str]:
        queue = Queue.from_url(redis_url, name="default")
        await queue.connect()
        try:
            jobs = [
                await queue.enqueue("divide", x=1, y=y, username=f"u-{i}", **options)
                for i, y in enumerate(ys)
            ]
        finally:
            await queue.disconnect()
        return [job.key for job in jobs if job is not None]

    return asyncio.run(go())


def _wait_finished(client: redis.Redis, keys: list[str], worker: subprocess.Popen[bytes], log: Path) -> None:
    """Until SAQ's own records of keys all say they ended (a condition: generous costs nothing)."""
    deadline = time.monotonic() + 30
    while True:
        raws = client.mget([f"saq:job:default:{k}" for k in keys])
        if all(raw is not None and json.loads(raw)["status"].encode() in TERMINAL for raw in raws):
            return
        assert worker.poll() is None, log.read_text()[-2000:]
        seen = [None if raw is None else json.loads(raw)["status"] for raw in raws]
        assert time.monotonic() < deadline, f"SAQ's worker did not finish the jobs: {seen}"
        time.sleep(0.05)


def test_counts_are_exact_with_failures_and_a_job_deleted_behind_our_back(
    redis_url: str, tmp_path: Path, saq_worker: Callable[[], subprocess.Popen[bytes]]
) -> None:
    client = redis.Redis.from_url(redis_url)
    worker = saq_worker()
    accepted_ts = time.time()
    ids = _enqueue(redis_url, [2] * 7 + [0] * 3)  # N = 10, k = 3 fail (ZeroDivisionError), SAQ's 1 try
    ok_ids, failing_ids = ids[:7], ids[7:]
    tracker = make_tracker(Jobs(tracker="saq", queue="default"), redis_url, "")
    assert isinstance(tracker, SaqTracker)
    _wait_finished(client, ids, worker, tmp_path / "worker.log")
    victim = ok_ids[4]
    client.delete(f"saq:job:default:{victim}")  # gone although SAQ keeps finished jobs 600 s (its default)

    records = list(tracker.export(ids, dict.fromkeys(ids, accepted_ts), 0))
    states = {r["job_id"]: r["state"] for r in records}
    assert states[victim] == "missing"
    assert sorted(states.values()) == sorted(["done"] * 6 + ["dead"] * 3 + ["missing"])
    assert all(states[j] == "dead" for j in failing_ids)
    for rec in (r for r in records if r["state"] == "done"):
        (att,) = rec["attempts"]
        assert rec["enqueued_ts"] <= att["start_ts"] <= att["end_ts"] == rec["done_ts"]
        assert att["try"] == 1 and att["outcome"] == "success" and rec["executions"] == 1
    dead = next(r for r in records if r["state"] == "dead")
    (att,) = dead["attempts"]
    assert att["outcome"] == "dead" and att["error"].startswith("failed: ZeroDivisionError")
    assert dead["dead_ts"] == att["end_ts"] and att["start_ts"] <= att["end_ts"]
    assert any(": lost (" in note and victim in note for note in tracker.notes)
    assert tracker.depth() == {"ready": 0, "deferred": 0, "in_progress": 0, "dlq": 0, "completed": 0}

    # the analysis reads these records as they are: 6 completed, 3 dead, 1 lost (named), queue wait known
    samples = pd.DataFrame({"status": [202] * len(ids), "job_id": ids})
    table = jobs_table(records)
    summary = reconcile(match(samples, table), table, accepted_ts - 1)
    got = (summary["completed"], summary["dead_lettered"], summary["lost"], summary["pending"])
    assert got == (6, 3, 1, 0)
    assert summary["lost_ids_sample"] == [victim]
    assert summary["e2e_samples"] == 6 and summary["queue_wait_ms"]["p50"] is not None
    tracker.close()
    client.close()


def test_retention_shorter_than_the_run_means_unknown_never_lost(
    redis_url: str, tmp_path: Path, saq_worker: Callable[[], subprocess.Popen[bytes]]
) -> None:
    client = redis.Redis.from_url(redis_url)
    accepted_ts = time.time()
    worker = saq_worker()
    # one job due in an hour: its record stays (pending) and says the run's ttl
    (later,) = _enqueue(redis_url, [2], ttl=1, scheduled=int(time.time()) + 3600)
    tracker = SaqTracker(redis.Redis.from_url(redis_url), "default")
    (before,) = tracker.export([later], {}, 0)
    assert before["state"] == "pending" and before["enqueued_ts"] >= accepted_ts - 1
    assert tracker.depth() == {"ready": 0, "deferred": 1, "in_progress": 0, "dlq": 0, "completed": 0}
    ids = _enqueue(redis_url, [2, 2, 2, 0], ttl=1)  # SAQ keeps these finished jobs 1 s
    _wait_finished(client, ids, worker, tmp_path / "worker.log")
    deadline = time.monotonic() + 5
    while client.exists(*(f"saq:job:default:{k}" for k in ids)):  # SAQ's own expiry (ttl), not ours
        assert time.monotonic() < deadline, "finished jobs were not expired by ttl"
        time.sleep(0.1)
    records = list(tracker.export([*ids, later], dict.fromkeys([*ids, later], accepted_ts), 0))
    assert [r["state"] for r in records] == ["unknown"] * 4 + ["pending"]
    assert all(r["done_ts"] is None and r["dead_ts"] is None for r in records)
    assert any("unknown" in note and "kept ~1 s (ttl)" in note for note in tracker.notes), tracker.notes
    assert not any(": lost (" in note for note in tracker.notes)
    assert tracker.depth()["deferred"] == 1  # the job due in an hour
    tracker.close()
    client.close()


def test_jobs_section_saq_needs_its_queue_and_may_name_its_redis() -> None:
    with pytest.raises(ValueError, match='tracker "saq" needs queue'):
        Jobs(tracker="saq")
    jobs = Jobs(tracker="saq", queue="default", redis_url="{redis_url}")
    tracker = make_tracker(jobs, "redis://:secret@127.0.0.1:6399/0", "")
    assert (
        isinstance(tracker, SaqTracker) and tracker.client.connection_pool.connection_kwargs["port"] == 6399
    )
    tracker.close()


def test_a_job_being_aborted_counts_in_progress_until_its_abort_key_goes(redis_url: str) -> None:
    # a sweep of a killed worker's job takes it out of every list and waits up to 5 s before re-queueing or
    # ending it: only its abort key shows it then, and a drain that saw 0 in progress stopped early (issue 21)
    client = redis.Redis.from_url(redis_url)
    tracker = SaqTracker(client, "default")
    other = SaqTracker(client, "other")
    try:
        client.set(tracker._prefix + "k1", b"{}")  # the job's record (status "aborting")
        client.setex("saq:abort:k1", 5, "swept")
        client.setex("saq:abort:gone", 5, "swept")  # an abort key of no job of this queue
        assert tracker.depth()["in_progress"] == 1
        assert other.depth()["in_progress"] == 0
        client.delete("saq:abort:k1")
        assert tracker.depth()["in_progress"] == 0
    finally:
        tracker.close()

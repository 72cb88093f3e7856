"""The rq tracker against a real Redis and RQ's own stock worker (`rq worker --burst`, the example's jobs)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import redis
from rq import Queue
from rq.job import Job

from analysis.jobs import match, reconcile
from analysis.load import jobs_table
from targets import Jobs
from targets.trackers import make_tracker
from targets.trackers.rq import RqTracker
from tests.targets.conftest import REPO, VENV_BIN

RQ_EXAMPLE = REPO / "examples" / "fastapi_rq"


def _env(redis_url: str) -> dict[str, str]:
    env = dict(os.environ, RQ_REDIS_URL=redis_url, REDIS_URL=redis_url, WORK_MS="5", PYTHONUNBUFFERED="1")
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    return env


def _burst(redis_url: str, log: Path, *args: str) -> None:
    """RQ's stock worker, by its own command, until the queue is empty (what the example's target starts)."""
    with log.open("ab") as out:
        proc = subprocess.run(
            ["rq", "worker", "--burst", *args, "default"],
            cwd=RQ_EXAMPLE,
            env=_env(redis_url),
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=60,
        )
    assert proc.returncode == 0, log.read_text()[-2000:]


def _enqueue(client: redis.Redis, ys: list[float], **options: object) -> list[str]:
    queue = Queue("default", connection=client)
    return [queue.enqueue("jobs.divide", 1, y, f"u-{i}", **options).id for i, y in enumerate(ys)]  # type: ignore[arg-type]


def test_counts_are_exact_with_failures_and_a_job_deleted_behind_our_back(
    redis_url: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    accepted_ts = time.time()
    ids = _enqueue(client, [2] * 7 + [0] * 3)  # N = 10, k = 3 fail (ZeroDivisionError)
    ok_ids, failing_ids = ids[:7], ids[7:]
    tracker = make_tracker(Jobs(tracker="rq", queue="default"), redis_url, "")
    assert isinstance(tracker, RqTracker)
    assert tracker.depth() == {"ready": 10, "deferred": 0, "in_progress": 0, "dlq": 0, "completed": 0}
    before = list(tracker.export(ok_ids[:2], {}, 0))
    assert [r["state"] for r in before] == ["pending", "pending"]
    assert all(r["enqueued_ts"] >= accepted_ts - 1 and r["executions"] == 0 for r in before)
    victim = ok_ids[4]
    client.delete(Job.key_for(victim))  # its id stays in the queue list: RQ's worker skips it
    _burst(redis_url, tmp_path / "worker.log")

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
    assert att["outcome"] == "dead" and "ZeroDivisionError" in att["error"]
    assert dead["dead_ts"] == att["end_ts"] and att["start_ts"] <= att["end_ts"]
    assert any(": lost (" in note and victim in note for note in tracker.notes)
    assert tracker.depth() == {"ready": 0, "deferred": 0, "in_progress": 0, "dlq": 3, "completed": 6}

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


def test_retention_shorter_than_the_run_means_unknown_never_lost(redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    accepted_ts = time.time()
    ids = _enqueue(client, [2, 2, 2, 2, 0])
    client.delete(Job.key_for(ids[1]))
    _burst(redis_url, tmp_path / "worker.log", "--results-ttl", "1")  # the worker keeps results 1 s
    deadline = time.monotonic() + 5
    while any(client.exists(Job.key_for(j)) for j in ids[:4]):  # RQ's own expiry, not ours
        assert time.monotonic() < deadline, "finished jobs were not expired by result_ttl"
        time.sleep(0.1)
    tracker = RqTracker(redis.Redis.from_url(redis_url), "default")
    records = list(tracker.export(ids, dict.fromkeys(ids, accepted_ts), 0))
    assert [r["state"] for r in records] == ["unknown"] * 4 + ["dead"]  # the failure is kept (failure_ttl)
    assert all(r["done_ts"] is None for r in records)
    assert any("unknown" in note and "result_ttl" in note for note in tracker.notes)
    assert not any(": lost (" in note for note in tracker.notes)
    tracker.close()
    client.close()


def test_jobs_section_rq_needs_its_queue_and_redis_url_is_rq_only() -> None:
    with pytest.raises(ValueError, match='tracker "rq" needs queue'):
        Jobs(tracker="rq")
    with pytest.raises(ValueError, match="redis_url is read by trackers rq, saq, celery and dramatiq only"):
        Jobs(tracker="arq", redis_url="redis://127.0.0.1:6379/0")
    jobs = Jobs(tracker="rq", queue="default", redis_url="{redis_url}")
    tracker = make_tracker(jobs, "redis://:secret@127.0.0.1:6399/0", "")
    assert isinstance(tracker, RqTracker) and tracker.client.connection_pool.connection_kwargs["port"] == 6399
    tracker.close()

"""The celery tracker against a real Redis and Celery's own stock worker (`celery -A tasks worker`, the example's
task), the tasks sent through Celery's own client."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import redis
from celery import Celery

from analysis.jobs import match, reconcile
from analysis.load import jobs_table
from targets import Jobs
from targets.trackers import make_tracker
from targets.trackers.celery import CeleryTracker
from tests.targets.conftest import REPO, VENV_BIN

CELERY_EXAMPLE = REPO / "examples" / "fastapi_celery"
META = "celery-task-meta-"


def _env(redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELERY_")}
    env.update(REDIS_URL=redis_url, WORK_MS="5", PYTHONUNBUFFERED="1", **extra)
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    return env


class Worker:
    """Celery's stock worker by its own command, one process (--pool solo), stopped with a warm shutdown."""

    def __init__(self, redis_url: str, log: Path, **env: str) -> None:
        # mingle and gossip wait for other workers' replies at start: none here, so they only cost time
        args = ["celery", "-A", "tasks", "worker", "--pool", "solo", "--without-mingle", "--without-gossip"]
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                args, cwd=CELERY_EXAMPLE, env=_env(redis_url, **env), stdout=out, stderr=subprocess.STDOUT
            )
        self.log = log

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def client(redis_url: str) -> Iterator[Celery]:
    """Celery's own client (what the example's API uses) on the test's Redis: broker and backend."""
    app = Celery("tests", broker=redis_url, backend=redis_url)
    yield app
    app.close()


def _send(app: Celery, ys: list[float]) -> list[str]:
    return [app.send_task("tasks.divide", args=(1, y, f"u-{i}")).id for i, y in enumerate(ys)]


def _wait_ended(r: redis.Redis, ids: list[str], worker: Worker, timeout_s: float = 30) -> None:
    """Until every task has a ready result (SUCCESS or FAILURE) in the backend, read as the tracker does."""
    deadline = time.monotonic() + timeout_s
    while True:
        metas = [json.loads(v) if v else {} for v in r.mget([META + j for j in ids])]
        if all(m.get("status") in ("SUCCESS", "FAILURE") for m in metas):
            return
        assert worker.proc.poll() is None, worker.log.read_text()[-2000:]
        assert time.monotonic() < deadline, worker.log.read_text()[-2000:]
        time.sleep(0.05)


def test_counts_are_exact_with_failures_and_a_result_deleted_behind_our_back(
    redis_url: str, client: Celery, tmp_path: Path
) -> None:
    r = redis.Redis.from_url(redis_url)
    accepted_ts = time.time()
    ids = _send(client, [2] * 7 + [0] * 3)  # N = 10, k = 3 fail (ZeroDivisionError, no retry)
    ok_ids, failing_ids = ids[:7], ids[7:]
    tracker = make_tracker(Jobs(tracker="celery"), redis_url, "")  # queue: Celery's default, "celery"
    assert isinstance(tracker, CeleryTracker) and tracker.queue == "celery"
    assert tracker.depth() == {"ready": 10, "deferred": 0, "in_progress": 0, "dlq": 0, "completed": 0}
    before = list(tracker.export(ok_ids[:2], dict.fromkeys(ids, accepted_ts), 0))
    assert [r["state"] for r in before] == ["pending", "pending"]  # PENDING and in the broker's list: queued
    assert all(r["enqueued_ts"] == accepted_ts and r["attempts"] == [] for r in before)

    worker = Worker(redis_url, tmp_path / "worker.log")
    try:
        _wait_ended(r, ids, worker)
    finally:
        worker.stop()
    victim = ok_ids[4]
    assert r.delete(META + victim) == 1  # its result gone while Celery keeps the others a day

    records = list(tracker.export(ids, dict.fromkeys(ids, accepted_ts), 0))
    states = {r["job_id"]: r["state"] for r in records}
    assert states[victim] == "missing"
    assert sorted(states.values()) == sorted(["done"] * 6 + ["dead"] * 3 + ["missing"])
    assert all(states[j] == "dead" for j in failing_ids)
    for rec in (r for r in records if r["state"] == "done"):
        (att,) = rec["attempts"]
        # Celery stores when a task ended, never when it started: no start time, no queue wait
        assert att == {
            "try": 1,
            "start_ts": None,
            "end_ts": rec["done_ts"],
            "outcome": "success",
            "error": None,
        }
        assert accepted_ts < rec["done_ts"] < time.time() and rec["executions"] == 1
    dead = next(r for r in records if r["state"] == "dead")
    (att,) = dead["attempts"]
    assert att["outcome"] == "dead" and att["error"].startswith("ZeroDivisionError")
    assert dead["dead_ts"] == att["end_ts"] and dead["done_ts"] is None
    assert any(": lost (" in note and victim in note for note in tracker.notes)
    assert tracker.depth() == {"ready": 0, "deferred": 0, "in_progress": 0, "dlq": 0, "completed": 0}

    # the analysis reads these records as they are: 6 completed, 3 dead, 1 lost (named), e2e from the 202 only
    samples = pd.DataFrame({"status": [202] * len(ids), "job_id": ids})
    table = jobs_table(records)
    summary = reconcile(match(samples, table), table, accepted_ts - 1)
    got = (summary["completed"], summary["dead_lettered"], summary["lost"], summary["pending"])
    assert got == (6, 3, 1, 0)
    assert summary["lost_ids_sample"] == [victim]
    assert summary["e2e_samples"] == 6 and summary["queue_wait_ms"]["p50"] is None
    tracker.close()
    r.close()


def test_result_expires_shorter_than_the_run_means_unknown_never_lost(
    redis_url: str, client: Celery, tmp_path: Path
) -> None:
    # the example's defaults with results kept 2 s, chosen the example's way (CELERY_SETTINGS names a module)
    (tmp_path / "settings_short.py").write_text("from settings_defaults import *\n\nresult_expires = 2\n")
    r = redis.Redis.from_url(redis_url)
    ids = _send(client, [2, 2, 2, 2, 0])
    worker = Worker(
        redis_url,
        tmp_path / "worker.log",
        CELERY_SETTINGS="settings_short",
        PYTHONPATH=f"{tmp_path}{os.pathsep}{CELERY_EXAMPLE}",
    )
    try:
        _wait_ended(r, ids, worker)
        r.delete(META + ids[1])
        run_began = time.time() - 10  # a run that began 10 s ago outlives a 2 s retention
        tracker = CeleryTracker(redis.Redis.from_url(redis_url), "celery")
        records = list(tracker.export(ids, dict.fromkeys(ids, run_began), 0))  # before the others expire
    finally:
        worker.stop()
    assert [r["state"] for r in records] == ["done", "unknown", "done", "done", "dead"]
    assert records[1]["done_ts"] is None
    assert any("unknown" in n and "kept ~2 s (result_expires)" in n for n in tracker.notes), tracker.notes
    assert not any(": lost (" in note for note in tracker.notes)

    deadline = time.monotonic() + 5
    while r.exists(*(META + j for j in ids)):  # the backend's own expiry, not ours
        assert time.monotonic() < deadline, "results were not expired by result_expires"
        time.sleep(0.1)
    tracker.notes.clear()
    records = list(tracker.export(ids, dict.fromkeys(ids, time.time() - 1), 0))
    assert [r["state"] for r in records] == ["unknown"] * 5
    assert any("no task of this run left a result" in n and "result_expires" in n for n in tracker.notes)
    assert not any(": lost (" in note for note in tracker.notes)
    tracker.close()
    r.close()


def test_jobs_section_celery_queue_defaults_and_redis_url_takes_placeholders() -> None:
    jobs = Jobs(tracker="celery", queue="emails", redis_url="{redis_url}")
    tracker = make_tracker(jobs, "redis://:secret@127.0.0.1:6399/0", "")
    assert isinstance(tracker, CeleryTracker) and tracker.queue == "emails"
    assert tracker.client.connection_pool.connection_kwargs["port"] == 6399
    tracker.close()

"""The dramatiq tracker against a real Redis and Dramatiq's own worker (`dramatiq tasks`, the example's actor),
the messages sent through Dramatiq's own broker client."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import redis
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results.backend import ResultBackend

from analysis.jobs import match, reconcile
from analysis.load import jobs_table
from targets import Jobs
from targets.trackers import make_tracker
from targets.trackers.dramatiq import DramatiqTracker
from tests.targets.conftest import REPO, VENV_BIN

DRAMATIQ_EXAMPLE = REPO / "examples" / "fastapi_dramatiq"
IDLE = {"ready": 0, "deferred": 0, "in_progress": 0}


def _env(redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRAMATIQ_")}
    env.update(REDIS_URL=redis_url, WORK_MS="5", PYTHONUNBUFFERED="1", **extra)
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    return env


class Worker:
    """Dramatiq's own worker by its own command: one process, two threads; stopped with SIGTERM."""

    def __init__(self, redis_url: str, log: Path, **env: str) -> None:
        args = ["dramatiq", "tasks", "--processes", "1", "--threads", "2"]
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                args, cwd=DRAMATIQ_EXAMPLE, env=_env(redis_url, **env), stdout=out, stderr=subprocess.STDOUT
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
def broker(redis_url: str) -> Iterator[RedisBroker]:
    """Dramatiq's own Redis broker (what the example's API sends through) on the test's Redis."""
    client = RedisBroker(url=redis_url)
    yield client
    client.close()


def _send(broker: RedisBroker, ys: list[float]) -> list[str]:
    """One divide message per y; y == 0 fails on purpose and, with max_retries 0, is dead-lettered at once."""
    ids = []
    for i, y in enumerate(ys):
        options = {"max_retries": 0} if y == 0 else {}
        msg = Message(
            queue_name="default", actor_name="divide", args=(1, y, f"u-{i}"), kwargs={}, options=options
        )
        ids.append(broker.enqueue(msg).message_id)
    return ids


def _wait_idle(tracker: DramatiqTracker, dead: int, worker: Worker, timeout_s: float = 30) -> None:
    """Until the broker holds no message but the dead letters: every message acked or dead-lettered."""
    deadline = time.monotonic() + timeout_s
    while True:
        depth = tracker.depth()
        if {k: depth[k] for k in IDLE} == IDLE and depth["dlq"] == dead:
            return
        assert worker.proc.poll() is None, worker.log.read_text()[-2000:]
        assert time.monotonic() < deadline, worker.log.read_text()[-2000:]
        time.sleep(0.05)


def _result_key(message_id: str) -> str:
    msg = Message(
        queue_name="default", actor_name="divide", args=(), kwargs={}, options={}, message_id=message_id
    )
    return ResultBackend().build_message_key(msg)


def test_counts_are_exact_with_failures_and_a_result_deleted_behind_our_back(
    redis_url: str, broker: RedisBroker, tmp_path: Path
) -> None:
    r = redis.Redis.from_url(redis_url)
    accepted_ts = time.time()
    ids = _send(broker, [2] * 7 + [0] * 3)  # N = 10, k = 3 fail (ZeroDivisionError, max_retries 0)
    ok_ids, failing_ids = ids[:7], ids[7:]
    tracker = make_tracker(Jobs(tracker="dramatiq", queue="default:divide"), redis_url, "")
    assert isinstance(tracker, DramatiqTracker) and (tracker.queue, tracker.actors) == ("default", ["divide"])
    assert tracker.depth() == {"ready": 10, "deferred": 0, "in_progress": 0, "dlq": 0, "completed": 0}
    before = list(tracker.export(ok_ids[:2], dict.fromkeys(ids, accepted_ts), 0))
    assert [r["state"] for r in before] == ["pending", "pending"]
    # message_timestamp: the one time Dramatiq stores, when the message was sent
    assert all(accepted_ts - 1 < r["enqueued_ts"] < time.time() and r["attempts"] == [] for r in before)

    worker = Worker(redis_url, tmp_path / "worker.log", DRAMATIQ_SETTINGS="settings_at_least_once")
    try:
        _wait_idle(tracker, 3, worker)
    finally:
        worker.stop()
    victim = ok_ids[4]
    assert r.delete(_result_key(victim)) == 1  # its result gone while the others are kept a day

    records = list(tracker.export(ids, dict.fromkeys(ids, accepted_ts), 0))
    states = {r["job_id"]: r["state"] for r in records}
    assert states[victim] == "missing"
    assert sorted(states.values()) == sorted(["done"] * 6 + ["dead"] * 3 + ["missing"])
    assert all(states[j] == "dead" for j in failing_ids)
    for rec in (r for r in records if r["state"] == "done"):
        # a stored result says nothing of when: no start, no end, no enqueue (its message is gone)
        assert rec["attempts"] == [
            {"try": 1, "start_ts": None, "end_ts": None, "outcome": "success", "error": None}
        ]
        assert rec["done_ts"] is None and rec["enqueued_ts"] is None and rec["executions"] == 1
    dead = next(r for r in records if r["state"] == "dead")
    (att,) = dead["attempts"]
    assert att["outcome"] == "dead" and att["error"] == "ZeroDivisionError: division by zero"
    # the dead letter's score: when Dramatiq dead-lettered it; its message: when it was sent
    assert accepted_ts < dead["dead_ts"] == att["end_ts"] < time.time()
    assert accepted_ts - 1 < dead["enqueued_ts"] <= dead["dead_ts"] and dead["done_ts"] is None
    assert any(": lost (" in note and victim in note for note in tracker.notes), tracker.notes
    assert tracker.depth() == {"ready": 0, "deferred": 0, "in_progress": 0, "dlq": 3, "completed": 0}

    # the analysis reads these records as they are: 6 completed, 3 dead, 1 lost (named), no times to judge
    samples = pd.DataFrame({"status": [202] * len(ids), "job_id": ids})
    table = jobs_table(records)
    summary = reconcile(match(samples, table), table, accepted_ts - 1)
    got = (summary["completed"], summary["dead_lettered"], summary["lost"], summary["pending"])
    assert got == (6, 3, 1, 0)
    assert summary["lost_ids_sample"] == [victim]
    assert summary["e2e_samples"] == 0 and summary["queue_wait_ms"]["p50"] is None
    tracker.close()
    r.close()


def test_dramatiq_defaults_keep_no_result_so_successes_are_unknown_never_done_nor_lost(
    redis_url: str, broker: RedisBroker, tmp_path: Path
) -> None:
    ids = _send(broker, [2, 2, 2, 2, 0])
    tracker = DramatiqTracker(redis.Redis.from_url(redis_url), "default:divide")
    worker = Worker(redis_url, tmp_path / "worker.log")  # the example's default: settings_defaults
    try:
        _wait_idle(tracker, 1, worker)
    finally:
        worker.stop()
    records = list(tracker.export(ids, dict.fromkeys(ids, time.time() - 1), 0))
    # an ack deletes the message and nothing stores a result: the four successes left no trace at all;
    # the failure is in the dead letters, which Dramatiq keeps whatever the settings
    assert [r["state"] for r in records] == ["unknown"] * 4 + ["dead"]
    assert any("unknown" in n and "store_results=True" in n and "result_ttl" in n for n in tracker.notes)
    assert not any(": lost (" in note for note in tracker.notes)
    tracker.close()


def test_without_the_actor_name_it_is_learnt_from_the_messages_seen(
    redis_url: str, broker: RedisBroker
) -> None:
    ids = _send(broker, [2])
    tracker = DramatiqTracker(redis.Redis.from_url(redis_url), "default")
    assert [r["state"] for r in tracker.export(ids, {}, 0)] == ["pending"]
    assert tracker.actors == ["divide"]
    tracker.close()


def test_jobs_section_dramatiq_needs_a_queue_and_redis_url_takes_placeholders() -> None:
    with pytest.raises(ValueError, match='tracker "dramatiq" needs queue'):
        Jobs(tracker="dramatiq")
    jobs = Jobs(tracker="dramatiq", queue="emails:send", redis_url="{redis_url}")
    tracker = make_tracker(jobs, "redis://:secret@127.0.0.1:6399/0", "")
    assert isinstance(tracker, DramatiqTracker) and (tracker.queue, tracker.actors) == ("emails", ["send"])
    assert tracker.client.connection_pool.connection_kwargs["port"] == 6399
    tracker.close()

"""The arq worker as a real subprocess (`python -m service.worker`) against real Redis: retries with back-off,
the DLQ and redrive, SIGTERM under load, SIGKILL re-runs, a Redis restart.

Also the support the other worker-side test files import (start_worker, enqueue, wait_for).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from service import dlq, keys
from service.backfill import failure_plan, page_digest, result_digest
from service.enqueue import enqueue_backfill
from service.lifecycle import export_records
from service.settings import WorkProfile

REPO = Path(__file__).resolve().parents[2]

# short jobs, fast retries, short claim: every test finishes in seconds
WORKER_ENV: dict[str, str] = {
    "OFFLOAD_PAGES": "2",
    "OFFLOAD_IO_MS": "3",
    "OFFLOAD_IO_SIGMA": "0.2",
    "OFFLOAD_CPU_MS": "0.2",
    "OFFLOAD_TRANSIENT_RATE": "0",
    "OFFLOAD_POISON_RATE": "0",
    "OFFLOAD_SEED": "7",
    "OFFLOAD_MAX_JOBS": "50",
    "OFFLOAD_RETRY_BASE_S": "0.05",
    "OFFLOAD_RETRY_CAP_S": "0.4",
    "OFFLOAD_JOB_TIMEOUT_S": "5",
    "OFFLOAD_ORPHAN_MARGIN_S": "1",
    "OFFLOAD_SHUTDOWN_GRACE_S": "5",
    "OFFLOAD_POLL_DELAY_S": "0.02",
    "OFFLOAD_RECORD_TTL_S": "3600",
}


@dataclass
class WorkerProcess:
    """A running `python -m service.worker`."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str]
    _closed: bool = field(default=False, repr=False)

    def log(self) -> str:
        """Everything it wrote (JSON lines on stderr) so far."""
        return self.log_path.read_text(errors="replace")

    def events(self, name: str) -> list[dict[str, Any]]:
        """The parsed JSON log lines whose msg is name."""
        out = []
        for line in self.log().splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if obj.get("msg") == name:
                out.append(obj)
        return out

    def signal_and_wait(self, sig: int = signal.SIGTERM, timeout_s: float = 30) -> int:
        """Send sig and wait for the exit code."""
        self._closed = True
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def stop(self) -> None:
        """Teardown: SIGTERM, then SIGKILL if needed."""
        if not self._closed:
            try:
                self.signal_and_wait(signal.SIGTERM, 15)
            except subprocess.TimeoutExpired:
                pass


def launch_worker(redis_url: str, log_dir: Path, **env_overrides: str) -> WorkerProcess:
    """Start `python -m service.worker` against redis_url with WORKER_ENV + overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_") and k != "REDIS_URL"}
    env.update(WORKER_ENV)
    env.update({"OFFLOAD_REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1"})
    env.update(env_overrides)
    log_path = log_dir / f"worker-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service.worker"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    return WorkerProcess(proc, log_path, env)


@pytest.fixture
def start_worker(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory: start_worker(redis_url_override=None, **env) -> WorkerProcess; all stopped at teardown."""
    started: list[WorkerProcess] = []

    def _start(redis_url_override: str | None = None, **env: str) -> WorkerProcess:
        w = launch_worker(redis_url_override or redis_url, tmp_path, **env)
        started.append(w)
        return w

    try:
        yield _start
    finally:
        for w in started:
            w.stop()


def enqueue(redis_url: str, source_ids: list[str]) -> list[str]:
    """Create sources and enqueue their jobs with the API's one-round-trip enqueue; returns the job ids."""

    async def run() -> list[str]:
        client = AsyncRedis.from_url(redis_url)
        try:
            now_ms = int(time.time() * 1000)
            for sid in source_ids:
                await enqueue_backfill(
                    client,
                    source_id=sid,
                    job_id=f"job-{sid}",
                    now_ms=now_ms,
                    source_fields={
                        "user_id": "u1",
                        "name": sid,
                        "created_ts": now_ms / 1000,
                        "state": "pending",
                    },
                    record_ttl_s=3600,
                )
        finally:
            await client.aclose()
        return [f"job-{sid}" for sid in source_ids]

    return asyncio.run(run())


def wait_for(
    predicate: Callable[[], bool], timeout_s: float, what: str, proc: WorkerProcess | None = None
) -> None:
    """Poll predicate every 20 ms until true; fail with what (and the worker's log tail) on timeout."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            tail = proc.log()[-3000:] if proc else ""
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}\n{tail}")
        time.sleep(0.02)


def records(client: redis.Redis, job_ids: list[str]) -> list[dict[str, Any]]:
    """Lifecycle records of job_ids."""
    return list(export_records(client, job_ids))


def all_in_state(client: redis.Redis, job_ids: list[str], state: str) -> Callable[[], bool]:
    """Predicate: every job's record is in state."""
    return lambda: all(r["state"] == state for r in records(client, job_ids))


def in_progress_keys(client: redis.Redis) -> list[bytes]:
    """arq's in-progress keys left in Redis."""
    return list(client.scan_iter(match="arq:in-progress:*", count=1000))


def test_transient_failures_retry_with_backoff_then_done(redis_url, client, start_worker):
    env = {"OFFLOAD_TRANSIENT_RATE": "0.5", "OFFLOAD_MAX_TRIES": "12"}
    work = WorkProfile(pages=2, transient_rate=0.5, seed=7)
    sources = [f"t{i}" for i in range(10)]
    # the failures are seeded per (source, attempt): the expected attempt count of each job is known up front
    expected = {}
    for sid in sources:
        n = 1
        while failure_plan(work, sid, n) is not None:
            n += 1
        expected[f"job-{sid}"] = n
    assert max(expected.values()) >= 3, "the seed must give some job at least two retries"
    worker = start_worker(**env)
    job_ids = enqueue(redis_url, sources)
    wait_for(all_in_state(client, job_ids, "done"), 30, "all jobs done", worker)
    retry_delays = {}
    for ev in worker.events("retrying"):
        retry_delays[(ev["job_id"], ev["job_try"])] = ev["delay_s"]
    for rec in records(client, job_ids):
        attempts = rec["attempts"]
        assert len(attempts) == expected[rec["job_id"]] == rec["executions"]
        assert [a["outcome"] for a in attempts] == ["retry"] * (len(attempts) - 1) + ["success"]
        assert [a["try"] for a in attempts] == list(range(1, len(attempts) + 1))
        assert rec["done_ts"] >= attempts[-1]["start_ts"]
        for prev, nxt in zip(attempts, attempts[1:], strict=False):
            gap_s = nxt["start_ts"] - prev["end_ts"]
            delay_s = retry_delays[(rec["job_id"], prev["try"])]
            envelope_s = min(0.4, 0.05 * 2 ** (prev["try"] - 1))
            assert 0 <= delay_s <= envelope_s + 1e-9  # full jitter inside the doubling envelope
            assert gap_s >= delay_s - 0.01  # the back-off is honoured: the next try never starts early
            assert gap_s < envelope_s + 2.0  # and it does run again soon after (generous margin)
    stats = client.hgetall(keys.STATS)
    assert int(stats[b"retried"]) == sum(n - 1 for n in expected.values())
    assert int(stats[b"completed"]) == len(sources)


def test_a_done_job_leaves_its_source_done_with_the_backfilled_data(redis_url, client, start_worker):
    # the worker writes the source's "running" fields in the attempt's start step and its "done" fields in
    # arq's finish transaction (not through run_backfill): the source must read as sync mode leaves it
    sources = ["d1", "d2", "d3"]
    worker = start_worker()
    job_ids = enqueue(redis_url, sources)
    wait_for(all_in_state(client, job_ids, "done"), 30, "all jobs done", worker)
    for sid in sources:
        src = {k.decode(): v.decode() for k, v in client.hgetall(keys.source(sid)).items()}
        digests = [page_digest("u1", sid, page) for page in range(2)]
        assert src["state"] == "done" and src["attempts"] == "1" and src["pages"] == "2"
        assert float(src["started_ts"]) <= float(src["done_ts"])
        assert src["result_digest"] == result_digest(digests)
        assert client.hgetall(keys.source_data(sid)) == {b"0": digests[0].encode(), b"1": digests[1].encode()}
        assert 0 < client.ttl(keys.source(sid)) <= 3600


def test_a_job_whose_source_is_gone_is_dead_lettered_without_marking_it_running(
    redis_url, client, start_worker
):
    [job_id] = enqueue(redis_url, ["gone"])
    client.delete(keys.source("gone"))
    worker = start_worker()
    wait_for(all_in_state(client, [job_id], "dead"), 30, "the job dead-lettered", worker)
    parked = asyncio.run(_show(redis_url, job_id))
    assert parked is not None and parked["error_type"] == "SourceMissingError" and parked["source"] is None
    src = client.hgetall(keys.source("gone"))
    assert src[b"state"] == b"dead" and b"started_ts" not in src and b"user_id" not in src


def test_backoff_envelope_doubles_up_to_the_cap():
    import random

    from service.backfill import backoff_s

    rng = random.Random(1)
    means = [sum(backoff_s(n, 0.1, 1.0, rng) for _ in range(4000)) / 4000 for n in range(1, 7)]
    # mean of uniform(0, envelope) is envelope/2: 0.05, 0.1, 0.2, 0.4, then capped at 0.5
    for got, want in zip(means, [0.05, 0.1, 0.2, 0.4, 0.5, 0.5], strict=True):
        assert abs(got - want) < want * 0.1


def test_poison_goes_to_dlq_with_full_record_and_redrive_completes(redis_url, client, start_worker):
    poisoned = start_worker(OFFLOAD_POISON_RATE="1", OFFLOAD_MAX_TRIES="5")
    job_ids = enqueue(redis_url, ["p1", "p2"])
    wait_for(all_in_state(client, job_ids, "dead"), 20, "jobs dead-lettered", poisoned)
    assert poisoned.signal_and_wait() == 0

    rec = asyncio.run(_show(redis_url, "job-p1"))
    assert rec is not None
    assert rec["job_id"] == "job-p1" and rec["source_id"] == "p1"
    assert rec["function"] == keys.JOB_FUNCTION and rec["args"] == ["p1"]
    assert rec["error_type"] == "PoisonBackfillError" and "poison failure" in rec["error"]
    assert "Traceback" in rec["traceback"] and "PoisonBackfillError" in rec["traceback"]
    assert rec["attempts"] == 1  # poison is never retried
    assert rec["enqueued_ts"] <= rec["failed_ts"] and rec["redrives"] == 0
    [r1] = records(client, ["job-p1"])
    assert r1["state"] == "dead" and r1["dead_ts"] is not None and r1["attempts"][0]["outcome"] == "dead"
    assert client.hget(keys.source("p1"), "state") == b"dead"
    assert not client.exists("arq:job:job-p1")  # arq is done with it: only the DLQ holds it
    assert poisoned.events("dead-lettered")

    fixed = start_worker()  # the "bug" is fixed: same sources, no poison
    asyncio.run(_redrive(redis_url, "job-p1"))
    wait_for(all_in_state(client, ["job-p1"], "done"), 20, "redriven job done", fixed)
    [r1] = records(client, ["job-p1"])
    assert r1["redrives"] == 1 and r1["executions"] == 2
    assert [a["try"] for a in r1["attempts"]] == [1, 1]  # fresh tries after the redrive
    assert client.hget(keys.source("p1"), "state") == b"done"
    assert client.hexists(keys.DLQ, "job-p1") is False and client.hexists(keys.DLQ, "job-p2") is True
    assert int(client.hget(keys.STATS, "redriven")) == 1


def test_exhausted_transient_tries_end_in_dlq(redis_url, client, start_worker):
    worker = start_worker(OFFLOAD_TRANSIENT_RATE="1", OFFLOAD_MAX_TRIES="3")
    [job_id] = enqueue(redis_url, ["x1"])
    wait_for(all_in_state(client, [job_id], "dead"), 20, "job dead-lettered", worker)
    rec = asyncio.run(_show(redis_url, job_id))
    assert rec is not None and rec["attempts"] == 3 and rec["error_type"] == "TransientBackfillError"
    [r] = records(client, [job_id])
    assert [a["outcome"] for a in r["attempts"]] == ["retry", "retry", "dead"]


async def _show(redis_url: str, job_id: str) -> dict[str, Any] | None:
    c = AsyncRedis.from_url(redis_url)
    try:
        return await dlq.show(c, job_id)
    finally:
        await c.aclose()


async def _redrive(redis_url: str, job_id: str) -> dict[str, Any]:
    c = AsyncRedis.from_url(redis_url)
    try:
        return await dlq.redrive(c, job_id)
    finally:
        await c.aclose()


def test_job_timeout_is_retried_like_an_unknown_error_then_dead_lettered(redis_url, client, start_worker):
    # a TimeoutError is not a backfill error: it takes the "unknown exception" path (retried, then the DLQ)
    worker = start_worker(
        OFFLOAD_PAGES="1",
        OFFLOAD_IO_MS="3000",
        OFFLOAD_IO_SIGMA="0",
        OFFLOAD_JOB_TIMEOUT_S="0.3",
        OFFLOAD_ORPHAN_MARGIN_S="2",
        OFFLOAD_MAX_TRIES="2",
    )
    [job_id] = enqueue(redis_url, ["slow"])
    wait_for(all_in_state(client, [job_id], "dead"), 20, "timed-out job dead-lettered", worker)
    [rec] = records(client, [job_id])
    assert [a["outcome"] for a in rec["attempts"]] == ["retry", "dead"]
    for a in rec["attempts"]:
        assert a["error"].startswith("TimeoutError") and a["end_ts"] - a["start_ts"] < 2.0  # ours, not arq's
    parked = asyncio.run(_show(redis_url, job_id))
    assert parked is not None and parked["error_type"] == "TimeoutError" and parked["attempts"] == 2


def asyncio_show_all(redis_url: str) -> list[dict[str, Any]]:
    """Every DLQ record."""

    async def run() -> list[dict[str, Any]]:
        c = AsyncRedis.from_url(redis_url)
        try:
            return await dlq.list_records(c, limit=1000)
        finally:
            await c.aclose()

    return asyncio.run(run())

"""In-process offload under an API kill (issue 21.4): the same SIGKILL of the API loses the inprocess jobs the
killed process held, and none of offload's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import redis as sync_redis
from redis.asyncio import Redis

from bench.run.faults import API_STOP_S, FAULT_NAMES, parse_fault
from service import keys, lifecycle
from service.inprocess import OWNER_TTL_S, OWNERS, SWEEP_AFTER_S, InProcess, owned
from service.lifecycle import export_records
from service.settings import Settings, WorkProfile

# 3 pages x 200 ms: ~0.6 s jobs, so about a dozen are in the API process when it is killed
SLOW_JOBS = ["--pages", "3", "--io-ms", "200", "--cpu-ms", "1"]
KILL_AT_S = 2  # Locust sends from ~1.3 s; the restarted API records the loss ~1-2 s after it is up


def _held_by_the_killed_process(records: list[dict], exit_ts: float) -> set[str]:
    """Jobs answered before the killed API exited (no API answers until its replacement starts, after that)
    that never finished an attempt: running or not yet started when the API process died. Read from the
    lifecycle records' timestamps, not from their state (which the restarted API's sweep writes)."""
    held = set()
    for rec in records:
        attempts = rec["attempts"] or []
        if rec["enqueued_ts"] <= exit_ts and not any(a["end_ts"] is not None for a in attempts):
            held.add(rec["job_id"])
    return held


def test_api_sigkill_loses_the_inprocess_jobs_of_the_killed_process_and_none_of_offload(
    tmp_path: Path,
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_") and k != "REDIS_URL"}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--modes", "inprocess,offload", "--duration", "7s",
         "--warmup", "1s", "--arrival-rate", "20", "--drain-timeout", "20s", "--fault", f"api-sigkill@{KILL_AT_S}s",
         "--out", str(tmp_path / "runs"), *SLOW_JOBS],
        cwd=tmp_path, env=clean, capture_output=True, timeout=120,
    )  # fmt: skip
    err = proc.stderr.decode()
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    faults = json.loads((run_dir / "faults.json").read_text())
    # the kill fired once in each phase with job ids, and the API came back on its port each time
    by_mode = {f["detail"]["mode"]: f for f in faults}
    assert set(by_mode) == {"inprocess", "offload"}, faults
    for fault in faults:
        assert fault["name"] == "api-sigkill" and fault["detail"]["exit_code"] == -9, fault
        assert "error" not in fault["detail"] and fault["detail"]["down_s"] > 0, fault

    records = [json.loads(line) for line in (run_dir / "jobs" / "inprocess.jsonl").read_text().splitlines()]
    kill = by_mode["inprocess"]
    held = _held_by_the_killed_process(records, kill["ts"] + kill["detail"]["exit_s"])
    inprocess = summary["modes"]["inprocess"]["jobs"]
    assert inprocess["lost"] > 0 and inprocess["lost"] == len(held), (inprocess, sorted(held))
    assert {r["job_id"] for r in records if r["state"] == "missing"} == held
    assert set(inprocess["lost_ids_sample"]) <= held
    # the rest is accounted for: done, or still running in the restarted process when the jobs were exported
    assert inprocess["completed"] + inprocess["pending"] + inprocess["lost"] == inprocess["accepted"]

    offload = summary["modes"]["offload"]["jobs"]
    assert offload["accepted"] > 50 and offload["lost"] == 0 and offload["pending"] == 0
    assert offload["completed"] == offload["accepted"]


def test_api_restart_lets_the_inprocess_jobs_finish(tmp_path: Path) -> None:
    """SIGTERM (a deploy's restart): uvicorn's graceful stop runs the answered requests' background tasks to
    their end before the process exits, so nothing is lost; the drain waits for the restarted API's jobs."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_") and k != "REDIS_URL"}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--modes", "inprocess", "--duration", "4s", "--warmup", "1s",
         "--arrival-rate", "20", "--drain-timeout", "20s", "--fault", "api-restart@2.5s",
         "--out", str(tmp_path / "runs"), *SLOW_JOBS],
        cwd=tmp_path, env=clean, capture_output=True, timeout=60,
    )  # fmt: skip
    err = proc.stderr.decode()
    assert proc.returncode == 0, err[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    (fault,) = json.loads((run_dir / "faults.json").read_text())
    assert fault["name"] == "api-restart" and fault["detail"]["mode"] == "inprocess", fault
    # uvicorn re-raises the SIGTERM after its graceful stop: -15, well within the bound before a SIGKILL
    detail = fault["detail"]
    assert detail["exit_code"] in (0, -15) and detail["exit_s"] < API_STOP_S and "error" not in detail, fault
    records = [json.loads(line) for line in (run_dir / "jobs" / "inprocess.jsonl").read_text().splitlines()]
    # jobs running when the API got its SIGTERM, each run to its end by the old process
    cut_at = fault["ts"]
    running = [r for r in records if any(a["start_ts"] < cut_at < (a["end_ts"] or 0) for a in r["attempts"])]
    assert running, "no job was running when the API got its SIGTERM"
    jobs = json.loads((run_dir / "summary.json").read_text())["modes"]["inprocess"]["jobs"]
    assert jobs["accepted"] > 20 and jobs["lost"] == 0 and jobs["pending"] == 0, jobs
    assert jobs["completed"] == jobs["accepted"], jobs


# The records and the sweep themselves, on a real Redis without the harness (fast).


def _settings(redis_url: str, **work: float) -> Settings:
    profile = {"pages": 2, "io_ms": 1.0, "cpu_ms": 0.1, "transient_rate": 0.0, "poison_rate": 0.0, **work}
    return Settings(redis_url=redis_url, retry_base_s=0.01, retry_cap_s=0.02, work=WorkProfile(**profile))


def _records(redis_url: str, job_ids: list[str]) -> dict[str, dict]:
    client = sync_redis.Redis.from_url(redis_url)
    try:
        return {r["job_id"]: r for r in export_records(client, job_ids)}
    finally:
        client.close()


async def _accept(ip: InProcess, job_id: str) -> None:
    fields: dict[str, str | int | float] = {
        "user_id": "u",
        "name": job_id,
        "mode": "inprocess",
        "state": "pending",
    }
    assert await ip.accept(f"s-{job_id}", job_id, fields, None) is None


async def test_inprocess_jobs_write_the_arq_jobs_lifecycle_records(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        ip = InProcess(_settings(redis_url), redis)
        await _accept(ip, "j1")
        record = _records(redis_url, ["j1"])["j1"]
        assert record["state"] == "pending" and record["attempts"] == [] and record["enqueued_ts"]
        await ip.run("s-j1", "j1", "u", "j1")
        record = _records(redis_url, ["j1"])["j1"]
        assert record["state"] == "done" and record["executions"] == 1 and record["done_ts"]
        assert [a["outcome"] for a in record["attempts"]] == ["success"]
        assert await redis.scard(owned(ip.owner)) == 0  # finished: no longer held
        assert (await redis.hget(keys.source("s-j1"), "state")) == b"done"
        # a poison source: one attempt, dead, never retried
        poison = InProcess(_settings(redis_url, poison_rate=1.0), redis)
        await _accept(poison, "j2")
        await poison.run("s-j2", "j2", "u", "j2")
        record = _records(redis_url, ["j2"])["j2"]
        assert record["state"] == "dead" and [a["outcome"] for a in record["attempts"]] == ["dead"]
    finally:
        await redis.aclose()


async def test_a_live_api_records_a_silent_owners_jobs_as_missing_and_keeps_their_attempts(
    redis_url: str,
) -> None:
    redis = Redis.from_url(redis_url)
    try:
        dead, live = InProcess(_settings(redis_url), redis), InProcess(_settings(redis_url), redis)
        for job_id in ("cut", "queued", "finished"):
            await _accept(dead, job_id)
        async with redis.pipeline(transaction=False) as pipe:  # "cut" started and never ended
            lifecycle.add_start(pipe, "cut", "s-cut", 1, time.time(), 3600, 60)
            await pipe.execute()
        await dead.run("s-finished", "finished", "u", "finished")
        await redis.zadd(OWNERS, {dead.owner: int((time.time() - OWNER_TTL_S - 1) * 1000)})  # its last beat
        assert await live.beat() == []  # its own beats have not gone through for long enough yet
        live.beating_since = (live.beating_since or 0) - SWEEP_AFTER_S
        assert await live.beat() == [dead.owner]
        records = _records(redis_url, ["cut", "queued", "finished"])
        assert {k: r["state"] for k, r in records.items()} == {
            "cut": "missing",
            "queued": "missing",
            "finished": "done",
        }
        assert records["cut"]["attempts"][0]["end_ts"] is None  # the cut stays visible
        assert (await redis.hget(keys.source("s-queued"), "state")) == b"lost"
        assert await redis.zscore(OWNERS, dead.owner) is None and await redis.zscore(OWNERS, live.owner)
        assert await redis.zcard(lifecycle.RUNNING) == 0
        assert await live.beat() == []  # swept once
    finally:
        await redis.aclose()


async def test_queue_depth_counts_the_jobs_api_processes_hold_until_done_or_swept(redis_url: str) -> None:
    """The end-of-load drain waits on queue_depth: in-process jobs are in no arq queue, yet in progress."""
    redis, client = Redis.from_url(redis_url), sync_redis.Redis.from_url(redis_url)
    try:
        dead, live = InProcess(_settings(redis_url), redis), InProcess(_settings(redis_url), redis)
        for ip in (dead, live):
            await ip.beat()
        await _accept(dead, "held")
        await _accept(live, "answered")
        depth = lifecycle.queue_depth(client)  # what loadtests/_jobside.py's backlog() sums:
        assert depth["ready"] + depth["deferred"] + depth["in_progress"] == 2 == depth["in_progress"]
        await live.run("s-answered", "answered", "u", "answered")
        assert lifecycle.queue_depth(client)["in_progress"] == 1  # the dead owner's job, until it is swept
        await redis.zadd(OWNERS, {dead.owner: int((time.time() - OWNER_TTL_S - 1) * 1000)})
        live.beating_since = time.monotonic() - SWEEP_AFTER_S
        assert await live.beat() == [dead.owner]
        depth = lifecycle.queue_depth(client)
        assert depth == {"ready": 0, "deferred": 0, "in_progress": 0, "dlq": 0, "completed": 1}
    finally:
        client.close()
        await redis.aclose()


def test_api_faults_parse() -> None:
    assert {"api-sigkill", "api-restart"} <= set(FAULT_NAMES)
    fault = parse_fault("api-sigkill@10s", 30)
    assert (fault.name, fault.at_s) == ("api-sigkill", 10.0)

"""Signals and crashes against the real worker subprocess: SIGTERM under load, SIGKILL mid-job, Redis restart.

Stock arq (0.28) under the same kind of load exited 1 with a CancelledError traceback in 3 of 8 SIGTERMs and
left up to 99 arq:in-progress keys with a 310 s TTL (reproduced with a stock Worker, 3000 jobs of 0.1 s).
"""

from __future__ import annotations

import signal

import redis

from bench.launch.redis_server import EmbeddedRedis
from service import keys
from tests.service import test_worker as support
from tests.service.test_worker import all_in_state, enqueue, in_progress_keys, records, wait_for

start_worker = support.start_worker

LOAD_ENV = {"OFFLOAD_PAGES": "2", "OFFLOAD_IO_MS": "25", "OFFLOAD_MAX_JOBS": "40"}


def _completed(c: redis.Redis) -> int:
    return int(c.hget(keys.STATS, "completed") or 0)


def test_sigterm_under_load_exits_clean_and_loses_nothing(redis_url, client, start_worker):
    job_ids: list[str] = []
    # alternate a grace long enough to drain with none at all (running jobs are cancelled and re-queued)
    for loop, grace_s in enumerate(["5", "0", "5", "0"]):
        job_ids += enqueue(redis_url, [f"s{loop}-{i}" for i in range(100)])
        worker = start_worker(OFFLOAD_SHUTDOWN_GRACE_S=grace_s, **LOAD_ENV)
        before = _completed(client)
        wait_for(lambda b=before: _completed(client) >= b + 15, 20, "jobs completing", worker)
        assert client.zcard("arq:queue") > 0, "the SIGTERM must land while jobs are queued and running"
        code = worker.signal_and_wait(signal.SIGTERM, 30)
        log = worker.log()
        assert code == 0, log[-3000:]
        assert "Traceback" not in log and "CancelledError" not in log
        assert in_progress_keys(client) == [], f"loop {loop}: in-progress keys left behind"
        assert worker.events("shutdown: draining")
        if grace_s == "0":
            assert worker.events("shutdown: grace over, cancelling jobs (they will run again)")
    final = start_worker(**LOAD_ENV)
    wait_for(all_in_state(client, job_ids, "done"), 30, "every job done", final)
    recs = records(client, job_ids)
    assert len(recs) == 400 and {r["state"] for r in recs} == {"done"}
    # cancelled attempts were recorded and their jobs ran again (re-executions are visible)
    cancelled = [r for r in recs if any(a["outcome"] == "cancelled" for a in r["attempts"])]
    assert cancelled, "a grace of 0 under load must cancel some running job"
    for r in cancelled:
        assert r["executions"] >= 2 and r["attempts"][-1]["outcome"] == "success"
    assert final.signal_and_wait() == 0


def test_sigkill_mid_job_reruns_within_the_configured_bound(redis_url, client, start_worker):
    env = {
        "OFFLOAD_PAGES": "1",
        "OFFLOAD_IO_MS": "1500",
        "OFFLOAD_IO_SIGMA": "0",
        "OFFLOAD_JOB_TIMEOUT_S": "2",
        "OFFLOAD_ORPHAN_MARGIN_S": "1",
    }
    claim_s = 3.0  # job_timeout_s + orphan_margin_s
    victim = start_worker(**env)
    job_ids = enqueue(redis_url, ["k1", "k2", "k3"])
    wait_for(all_in_state(client, job_ids, "running"), 15, "jobs running", victim)
    assert victim.signal_and_wait(signal.SIGKILL) == -signal.SIGKILL
    assert len(in_progress_keys(client)) == 3  # orphaned claims, each with a TTL of job timeout + margin
    for key in in_progress_keys(client):
        assert 0 < client.pttl(key) <= claim_s * 1000
    rescuer = start_worker(**env)
    wait_for(all_in_state(client, job_ids, "done"), 20, "orphaned jobs done", rescuer)
    for rec in records(client, job_ids):
        first, second = rec["attempts"]
        assert first["outcome"] is None and first["end_ts"] is None  # the killed attempt never ended
        assert second["outcome"] == "success" and rec["executions"] == 2
        rerun_after_s = second["start_ts"] - first["start_ts"]
        # not before the claim expires (no duplicate run while the first could still be alive) ...
        assert rerun_after_s >= claim_s - 0.5
        # ... and well within the bound, not arq's default of 310 s (2 s of slack for the new worker's start)
        assert rerun_after_s <= claim_s + 2.0


def test_redis_restart_with_jobs_queued_all_complete(tmp_path, start_worker):
    server = EmbeddedRedis(tmp_path / "own-redis")
    server.start()
    try:
        c = redis.Redis.from_url(server.url)
        job_ids = enqueue(server.url, [f"r{i}" for i in range(100)])
        worker = start_worker(
            server.url, OFFLOAD_PAGES="2", OFFLOAD_IO_MS="50", OFFLOAD_MAX_JOBS="5", OFFLOAD_JOB_TIMEOUT_S="2"
        )
        wait_for(lambda: _completed(c) >= 5, 20, "first jobs done", worker)
        queued_before = c.zcard("arq:queue")
        assert queued_before > 20, "the restart must happen with jobs queued"
        c.close()
        server.restart()  # SIGTERM (AOF fsync) and start on the same port and data folder
        c = redis.Redis.from_url(server.url)
        assert c.zcard("arq:queue") > 0, "queued jobs survive the restart (AOF)"
        wait_for(all_in_state(c, job_ids, "done"), 30, "all jobs done after the restart", worker)
        assert worker.proc.poll() is None, "the worker must survive the restart"
        assert worker.signal_and_wait() == 0
        assert in_progress_keys(c) == []
        c.close()
    finally:
        server.cleanup()


def test_second_sigterm_cuts_the_grace_short_and_requeues_running_jobs(redis_url, client, start_worker):
    env = {
        "OFFLOAD_PAGES": "1",
        "OFFLOAD_IO_MS": "20000",  # far longer than the test: only the second signal can end them
        "OFFLOAD_IO_SIGMA": "0",
        "OFFLOAD_JOB_TIMEOUT_S": "60",
        "OFFLOAD_SHUTDOWN_GRACE_S": "60",
    }
    worker = start_worker(**env)
    job_ids = enqueue(redis_url, ["g1", "g2"])
    wait_for(all_in_state(client, job_ids, "running"), 15, "jobs running", worker)
    worker.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: bool(worker.events("shutdown: draining")), 10, "drain started", worker)
    assert worker.proc.poll() is None  # still inside its 60 s grace
    assert worker.signal_and_wait(signal.SIGTERM, timeout_s=10) == 0
    assert "Traceback" not in worker.log()
    assert in_progress_keys(client) == []
    assert {m.decode() for m in client.zrange("arq:queue", 0, -1)} == set(job_ids)  # re-queued, not lost
    for rec in records(client, job_ids):
        assert rec["state"] == "pending" and rec["attempts"][-1]["outcome"] == "cancelled"

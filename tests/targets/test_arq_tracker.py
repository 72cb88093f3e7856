"""The arq tracker against the example app's real uvicorn API and stock arq workers: exact reconciliation."""

from __future__ import annotations

import time

import httpx
import pandas as pd
import redis

from analysis.jobs import match, reconcile
from analysis.load import jobs_table
from bench.launch.redis_server import free_port
from targets.trackers import ArqTracker
from tests.targets.conftest import Procs, WaitFor, example_env


def _offload(url: str, y: float, n: int) -> list[str]:
    ids = []
    with httpx.Client(base_url=url, timeout=5) as client:
        for i in range(n):
            resp = client.post("/tasks/divide", json={"x": 1, "y": y, "username": f"t-{y}-{i}"})
            assert resp.status_code == 202
            ids.append(resp.json()["job_id"])
    return ids


def _idle(tracker: ArqTracker) -> bool:
    depth = tracker.depth()
    return depth["ready"] + depth["deferred"] + depth["in_progress"] == 0


def test_counts_are_exact_with_failures_and_a_job_deleted_behind_our_back(
    redis_url: str, procs: Procs, wait_for: WaitFor
) -> None:
    env = example_env(redis_url)
    url = procs.api(free_port(), env)
    accepted_ts = time.time()
    ok_ids, failing_ids = _offload(url, 2, 10), _offload(url, 0, 3)
    client = redis.Redis.from_url(redis_url)
    tracker = ArqTracker(redis.Redis.from_url(redis_url), "arq:queue")
    assert tracker.depth()["ready"] == 13  # no worker yet: all queued
    before = {r["job_id"]: r["state"] for r in tracker.export(ok_ids[:2], {}, 0)}
    assert before == dict.fromkeys(ok_ids[:2], "pending")
    victim = ok_ids[4]
    client.delete(f"arq:job:{victim}")
    client.zrem("arq:queue", victim)
    procs.worker(env)
    wait_for(lambda: _idle(tracker) and tracker.depth()["completed"] == 12, 60)

    ids = ok_ids + failing_ids
    records = list(tracker.export(ids, dict.fromkeys(ids, accepted_ts), 0))
    states = {r["job_id"]: r["state"] for r in records}
    assert states[victim] == "missing"
    assert sorted(states.values()) == sorted(["done"] * 9 + ["dead"] * 3 + ["missing"])
    assert all(states[j] == "dead" for j in failing_ids)
    done = [r for r in records if r["state"] == "done"]
    for rec in done:
        (att,) = rec["attempts"]
        assert rec["enqueued_ts"] <= att["start_ts"] <= att["end_ts"] == rec["done_ts"]
        assert att["try"] == 1 and rec["executions"] == 1
    dead = next(r for r in records if r["state"] == "dead")
    assert "ZeroDivisionError" in dead["attempts"][0]["error"] and dead["dead_ts"] is not None
    assert any("lost" in note and victim in note for note in tracker.notes)

    # the analysis reads these records as they are: 9 completed, 3 failed, 1 lost, queue wait and e2e known
    samples = pd.DataFrame({"status": [202] * len(ids), "job_id": ids})  # the 202 answers that carried them
    table = jobs_table(records)
    summary = reconcile(match(samples, table), table, accepted_ts - 1)
    assert (summary["completed"], summary["dead_lettered"], summary["lost"], summary["pending"]) == (
        9,
        3,
        1,
        0,
    )
    assert summary["lost_ids_sample"] == [victim]
    assert summary["e2e_samples"] == 9 and summary["queue_wait_ms"]["p50"] is not None
    tracker.close()
    client.close()


def test_no_result_kept_means_unknown_never_done_or_lost(
    redis_url: str, procs: Procs, wait_for: WaitFor
) -> None:
    env = example_env(redis_url, KEEP_RESULT_S="0", WORK_MS="1500")
    url = procs.api(free_port(), env)
    tracker = ArqTracker(redis.Redis.from_url(redis_url), "arq:queue")
    procs.worker(env)
    ids = _offload(url, 2, 4)
    running: list[dict] = []

    def all_running() -> bool:  # judged on one export, not on a depth read followed by an export
        running[:] = tracker.export(ids, {}, 0)
        return {r["state"] for r in running} == {"running"}

    wait_for(all_running, 30)  # the worker's own start included, on a machine that may be busy
    assert all(r["executions"] == 1 for r in running)
    wait_for(lambda: _idle(tracker), 20)
    records = list(tracker.export(ids, dict.fromkeys(ids, time.time()), 0))
    assert [r["state"] for r in records] == ["unknown"] * 4
    assert all(r["done_ts"] is None for r in records)
    assert any("unknown" in note and "keep_result = 0" in note for note in tracker.notes)
    tracker.close()

"""The http tracker polls the example app's status route (real uvicorn + stock arq worker) after the load."""

from __future__ import annotations

import time

import httpx

from bench.launch.redis_server import free_port
from targets import parse_target
from targets.trackers import HttpTracker, NoTracker
from tests.targets.conftest import Procs, example_env

JOBS = """
url = "http://127.0.0.1:1"
[modes.offload]
path = "/tasks/divide"
job_id = "job_id"
[jobs]
tracker = "http"
status_path = "/tasks/{job_id}"
state = "status"
done = ["complete"]
failed = ["failed"]
poll_rate = 50
"""


def test_polls_until_done_failed_or_missing(redis_url: str, procs: Procs) -> None:
    env = example_env(redis_url, WORK_MS="300")
    url = procs.api(free_port(), env)
    procs.worker(env)
    ids = []
    with httpx.Client(base_url=url, timeout=5) as client:
        for y in (2, 2, 0):
            ids.append(client.post("/tasks/divide", json={"x": 1, "y": y, "username": "u"}).json()["job_id"])
    accepted = time.time()
    tracker = HttpTracker(url, parse_target(JOBS, "t.toml").jobs)
    ids.append("no-such-job")
    records = {r["job_id"]: r for r in tracker.export(ids, dict.fromkeys(ids, accepted), timeout_s=15)}
    assert [records[j]["state"] for j in ids] == ["done", "done", "dead", "missing"]
    # seen unfinished first (300 ms jobs), then done: an end time within one poll round
    for jid in ids[:2]:
        assert records[jid]["enqueued_ts"] == accepted < records[jid]["done_ts"] < time.time()
    assert tracker.rounds >= 2
    assert any("upper bounds" in note for note in tracker.notes)


def test_none_tracker_reports_every_job_unknown() -> None:
    tracker = NoTracker()
    records = list(tracker.export(["a", "b"], {"a": 1.0}, 0))
    assert [r["state"] for r in records] == ["unknown", "unknown"] and records[0]["enqueued_ts"] == 1.0
    assert tracker.depth() is None and "2 accepted job(s) is unknown" in tracker.notes[0]

"""Steps back to back on one stack (real Redis, uvicorn, workers and Locust): after an overloaded step, the next
lower step starts with no request of the previous one in flight and an empty job queue (issue 23)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.capacity.measure import abandoned
from bench.capacity.session import SEARCH_WORKER_NICE
from bench.capacity.stackrun import StepStack
from bench.run.config import load_config

pytestmark = pytest.mark.timeout(420)


def _start_ts(run_dir: Path, mode: str) -> float:
    return float(json.loads((run_dir / "run.json").read_text())["modes"][mode]["start_ts"])


def _samples(run_dir: Path, mode: str) -> pd.DataFrame:
    return pd.concat(pd.read_csv(p) for p in sorted((run_dir / "samples").glob(f"{mode}-*.csv")))


def test_after_an_overloaded_step_the_next_lower_step_starts_idle(tmp_path: Path):
    base = load_config(None, {
        "out": tmp_path / "steps", "duration_s": 3, "warmup_s": 0.5, "drain_timeout_s": 1, "workers": 1,
        "modes": ["sync", "offload"], "work": {},
    })  # fmt: skip
    # waited out, not restarted: a fresh stack would be empty anyway, the wait is what is under test; the
    # workers at the search's priority (the settle drains with the API idle, where nice does not slow them)
    with StepStack(
        base, 1, tmp_path / "stack", settle_s=120, restart_after_s=120, worker_nice=SEARCH_WORKER_NICE
    ) as stack:
        # one worker completes a few dozen default jobs/s: 150 req/s for 3 s leaves hundreds queued
        jobs_high = stack.run_step("offload", 150.0, "p95", True, 1, 3.0)
        jobs_low = stack.run_step("offload", 10.0, "p95", True, 2, 3.0)
        # sync runs the backfill in the request: 60 req/s is far beyond it, requests pile up in the server
        sync_high = stack.run_step("sync", 60.0, "p95", False, 3, 3.0)
        sync_low = stack.run_step("sync", 5.0, "p95", False, 4, 3.0)

    # the overloaded offload step left a backlog, which the settle waited out: the lower step's queue started empty
    settle = jobs_low.settle
    assert settle is not None and (settle.queue_left or 0) > 0, settle
    assert settle.queue == 0 and settle.inflight == 0 and not settle.restarted, settle
    queue = pd.read_csv(Path(str(jobs_low.run_dir)) / "queue" / "offload.csv")
    first = queue.iloc[0]
    assert first["ready"] + first["deferred"] + first["in_progress"] == 0, queue.head()
    assert jobs_low.backlog_growing is not True, jobs_low.reason

    # the overloaded sync step still had requests in the server when its load ended; every one was answered
    # before the lower step's first arrival (none abandoned, none running on into the next step)
    high_dir, low_dir = Path(str(sync_high.run_dir)), Path(str(sync_low.run_dir))
    high = _samples(high_dir, "sync")
    ends = high["start_ts"].to_numpy() + high["latency_ms"].to_numpy() / 1000.0
    load_end = float(high["intended_ts"].max())
    assert int(np.count_nonzero(ends > load_end + 1.0)) > 0  # in flight at the end of the load: overloaded
    assert abandoned(high_dir, "sync") == 0
    assert float(ends.max()) < _start_ts(low_dir, "sync")
    assert sync_low.settle is not None and sync_low.settle.inflight == 0 and not sync_low.settle.restarted
    assert sync_low.sustainable, sync_low.reason
    assert not jobs_high.jobs_sustainable  # the high step was overloaded on the job side
    assert {s.workers_nice for s in (jobs_high, jobs_low, sync_high, sync_low)} == {SEARCH_WORKER_NICE}

"""Short fault scenarios under load (issue 7): the real stack, a fault injected mid-run, nothing lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# 3 pages x 200 ms: ~0.6 s jobs, so a dozen are in flight when a worker is signalled
SLOW_JOBS = ["--pages", "3", "--io-ms", "200", "--cpu-ms", "1"]
FAST_JOBS = ["--pages", "3", "--io-ms", "5", "--cpu-ms", "1"]
ORPHAN_BOUND_S = 3 + 1  # OFFLOAD_JOB_TIMEOUT_S + OFFLOAD_ORPHAN_MARGIN_S below


def _run(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_") and k != "REDIS_URL"}
    clean.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--modes", "offload", "--duration", "8s", "--warmup", "1s",
         "--arrival-rate", "20", "--drain-timeout", "60s", "--out", str(tmp_path / "runs"), *args],
        cwd=tmp_path, env=clean, capture_output=True, timeout=170,
    )  # fmt: skip
    err = proc.stderr.decode()
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err
    (run_dir,) = (tmp_path / "runs").iterdir()
    return json.loads((run_dir / "summary.json").read_text())


def _fault(summary: dict) -> dict:
    (fault,) = [f for f in summary["reliability"]["faults"] if f.get("ts")]
    return fault


def _all_accounted(jobs: dict) -> None:
    assert jobs["accepted"] > 50
    assert jobs["lost"] == 0 and jobs["pending"] == 0
    assert jobs["completed"] + jobs["dead_lettered"] == jobs["accepted"]


def test_worker_sigterm_finishes_in_flight_jobs(tmp_path):
    summary = _run(tmp_path, "--fault", "worker-sigterm@3s", *SLOW_JOBS)
    fault, jobs = _fault(summary), summary["modes"]["offload"]["jobs"]
    _all_accounted(jobs)
    assert jobs["completed"] == jobs["accepted"] and jobs["duplicates"] == 0
    assert fault["detail"]["exit_code"] == 0  # graceful: finished its in-flight jobs and exited cleanly
    assert fault["jobs"]["in_flight"] > 0 and fault["jobs"]["orphaned"] == 0
    assert fault["api"]["errors"] == 0 and summary["reliability"]["errors_outside_faults"] == 0


def test_worker_sigkill_orphans_run_again_within_the_bound(tmp_path):
    env = {"OFFLOAD_JOB_TIMEOUT_S": "3", "OFFLOAD_ORPHAN_MARGIN_S": "1"}
    summary = _run(tmp_path, "--fault", "worker-sigkill@3s", *SLOW_JOBS, env=env)
    fault, jobs = _fault(summary), summary["modes"]["offload"]["jobs"]
    _all_accounted(jobs)
    assert fault["detail"]["exit_code"] == -9
    cut = fault["jobs"]
    assert cut["orphaned"] > 0 and cut["rerun"] == cut["orphaned"]
    # re-run once the in-progress key expires: not before the bound, and nowhere near arq's ~5 minutes
    assert ORPHAN_BOUND_S * 0.5 <= cut["rerun_max_s"] < 30
    assert jobs["duplicates"] >= cut["orphaned"]  # each re-run of a cut job is counted, not hidden
    assert fault["api"]["errors"] == 0


def test_redis_restart_errors_only_while_down_and_nothing_lost(tmp_path):
    # jobs whose completion write hit the outage re-run when their in-progress key expires (timeout + margin)
    env = {"OFFLOAD_JOB_TIMEOUT_S": "3", "OFFLOAD_ORPHAN_MARGIN_S": "1"}
    summary = _run(tmp_path, "--fault", "redis-restart@3s:2s", *FAST_JOBS, env=env)
    fault, jobs = _fault(summary), summary["modes"]["offload"]["jobs"]
    _all_accounted(jobs)
    assert jobs["completed"] == jobs["accepted"]
    api = fault["api"]
    assert api["errors"] > 0 and set(api["error_statuses"]) == {"503"}
    assert api["max_error_latency_ms"] <= 1000  # bounded timeouts: a 503 within 1 s, never a hang
    assert summary["reliability"]["errors_outside_faults"] == 0


@pytest.mark.parametrize("faults", [["transient-failures", "poison"]])
def test_failure_rates_retry_and_dead_letter_without_loss(tmp_path, faults):
    args = [a for f in faults for a in ("--fault", f)]
    summary = _run(
        tmp_path, *args, *FAST_JOBS, env={"OFFLOAD_RETRY_BASE_S": "0.05", "OFFLOAD_RETRY_CAP_S": "0.5"}
    )
    jobs = summary["modes"]["offload"]["jobs"]
    _all_accounted(jobs)
    assert jobs["retried"] > 0 and jobs["dead_lettered"] > 0
    assert summary["run"]["work_profile"]["transient_rate"] == 0.3
    assert summary["run"]["work_profile"]["poison_rate"] == 0.05


def test_redis_freeze_parses_and_needs_the_embedded_redis():
    from bench.run.faults import FAULT_NAMES, parse_fault

    fault = parse_fault("redis-freeze@10s:30s", 60)
    assert (fault.name, fault.at_s, fault.down_s) == ("redis-freeze", 10.0, 30.0)
    assert "redis-freeze" in FAULT_NAMES


def test_redis_freeze_answers_503_fast_and_loses_nothing(tmp_path):
    # issue 14.6: Redis up, connections open, nothing answered (SIGSTOP) for 3 s, then SIGCONT
    env = {"OFFLOAD_JOB_TIMEOUT_S": "3", "OFFLOAD_ORPHAN_MARGIN_S": "1"}
    summary = _run(tmp_path, "--fault", "redis-freeze@3s:3s", *FAST_JOBS, env=env)
    fault, jobs = _fault(summary), summary["modes"]["offload"]["jobs"]
    _all_accounted(jobs)
    assert fault["name"] == "redis-freeze" and fault["detail"]["down_s"] >= 3
    api = fault["api"]
    assert api["errors"] > 0 and set(api["error_statuses"]) == {"503"}
    assert api["max_error_latency_ms"] <= 1500  # a hung Redis costs a bounded 503, never a hang
    assert summary["reliability"]["errors_outside_faults"] == 0

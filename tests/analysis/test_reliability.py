"""Fault effects: API errors in the fault window, queue recovery, jobs cut by a kill and their re-runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.reliability import fault_effects

T0 = 1_700_000_000.0


def _samples():
    ts = T0 + np.arange(0, 30, 0.1)  # 10 req/s for 30 s
    down = (ts >= T0 + 10) & (ts < T0 + 13)  # Redis down 10-13 s: 503s
    return pd.DataFrame(
        {
            "intended_ts": ts,
            "ok": np.where(down, 0, 1),
            "status": np.where(down, 503, 202),
            "latency_ms": np.where(down, 501.0, 3.0),
        }
    )


def _queue():
    ts = T0 + np.arange(0, 31, 1.0)
    backlog = np.full(ts.size, 2)
    backlog[10:18] = [5, 9, 14, 12, 8, 5, 3, 2]  # piles up while Redis is down, drains to normal by T0+17
    return pd.DataFrame({"ts": ts, "ready": backlog, "deferred": 0, "in_progress": 0})


def _attempts():
    rows = [
        ("a", 1, T0 + 9.5, np.nan, ""),  # cut by a kill at T0+10, re-run at T0+16
        ("a", 2, T0 + 16.0, T0 + 16.5, "success"),
        ("b", 1, T0 + 9.8, T0 + 10.0, "cancelled"),  # cancelled at the fault, re-run at T0+11
        ("b", 2, T0 + 11.0, T0 + 11.2, "success"),
        ("c", 1, T0 + 9.9, T0 + 10.4, "success"),  # in flight, finished: not cut
        ("d", 1, T0 + 20.0, T0 + 20.3, "success"),  # after the fault: not in flight
    ]
    return pd.DataFrame.from_records(rows, columns=["job_id", "try", "start_ts", "end_ts", "outcome"])


def test_redis_outage_window_errors_and_recovery():
    fault = {"name": "redis-restart", "ts": T0 + 10, "end_ts": T0 + 13, "detail": {"down_s": 3}}
    rel = fault_effects([fault], _samples(), _queue(), None)
    entry = rel["faults"][0]
    assert entry["api"]["errors"] == 30 and entry["api"]["error_statuses"] == {"503": 30}
    assert entry["api"]["requests"] == 51  # 9.0-14.0 s inclusive: 10-13 s plus 1 s settle either side
    assert entry["api"]["max_error_latency_ms"] == pytest.approx(501.0)
    assert entry["recovery_s"] == pytest.approx(7.0)  # first sample after the end with backlog <= 2: T0+17
    assert rel["errors_outside_faults"] == 0


def test_kill_orphans_and_rerun_delays():
    fault = {"name": "worker-sigkill", "ts": T0 + 10, "end_ts": T0 + 10, "detail": {}}
    entry = fault_effects([fault], _samples(), _queue(), _attempts())["faults"][0]
    assert entry["jobs"] == {
        "in_flight": 3,
        "orphaned": 2,
        "rerun": 2,
        "rerun_max_s": pytest.approx(6.0),
        "rerun_p50_s": pytest.approx(3.5),
    }


def test_errors_outside_windows_and_rate_faults_without_time():
    samples = _samples()
    samples.loc[250, ["ok", "status"]] = [0, 500]  # one error at T0+25, outside the window
    faults = [
        {"name": "redis-restart", "ts": T0 + 10, "end_ts": T0 + 13, "detail": {}},
        {"name": "poison", "ts": None, "end_ts": None, "detail": {"poison_rate": 0.05}},
    ]
    rel = fault_effects(faults, samples, None, None)
    assert rel["errors_outside_faults"] == 1
    assert rel["faults"][0]["recovery_s"] is None  # no queue samples: unknown, not zero
    assert "api" not in rel["faults"][1]


def test_an_outage_also_cuts_attempts_begun_while_it_lasted():
    attempts = _attempts()
    extra = pd.DataFrame.from_records(
        [("e", 1, T0 + 11.0, np.nan, ""), ("e", 2, T0 + 75.0, T0 + 75.5, "success")],
        columns=["job_id", "try", "start_ts", "end_ts", "outcome"],
    )
    fault = {"name": "redis-restart", "ts": T0 + 10, "end_ts": T0 + 13, "detail": {}}
    jobs = fault_effects([fault], None, None, pd.concat([attempts, extra]))["faults"][0]["jobs"]
    # a, b (running at the start) and e (begun during the outage, never ended); c finished; b's retry at
    # T0+11 is a re-run, not a cut attempt
    assert jobs["orphaned"] == 3 and jobs["rerun"] == 3
    assert jobs["rerun_max_s"] == pytest.approx(65.0)


def test_a_cut_attempt_is_not_cut_again_by_every_later_fault():
    # a was cut by the kill at T0+10 and ran again at T0+16: a second kill at T0+25 cut nothing of it
    faults = [
        {"name": "worker-sigkill", "ts": T0 + 10, "end_ts": T0 + 10, "detail": {}},
        {"name": "worker-sigkill", "ts": T0 + 25, "end_ts": T0 + 25, "detail": {}},
    ]
    first, second = (f["jobs"] for f in fault_effects(faults, None, None, _attempts())["faults"])
    assert first["orphaned"] == 2 and first["rerun"] == 2
    assert second == {"in_flight": 0, "orphaned": 0, "rerun": 0, "rerun_max_s": None, "rerun_p50_s": None}

"""The workers' own logs in the run folder: their loop lag per worker beside the job figures, the faults they
caused themselves counted apart, and a CPU-bound worker named as the bottleneck (issue 25)."""

from __future__ import annotations

import json

import numpy as np

from analysis import workerlog
from analysis.report import build_report
from tests.analysis.runs import T0, samples_frame, write_run


def _lag_line(ts, counts, max_ms, limit=(5, 40), bound=50.0):
    return {"ts": ts, "level": "info", "logger": "service.worker", "msg": "loop lag", "ticks": sum(counts.values()),
            "counts": counts, "max_ms": max_ms, "bound_ms": bound, "adaptive": True, "limit": limit[1],
            "limit_low": limit[0], "limit_high": limit[1], "running": 3}  # fmt: skip


def _write_log(run_dir, name, events):
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (logs / f"{name}.log").write_text("".join(json.dumps(e) + "\n" for e in events) + "not json\n")


def test_lag_percentiles_merge_every_line_in_the_window(tmp_path):
    _write_log(tmp_path, "worker-1", [
        _lag_line(T0 - 5, {"1000": 50}, 1000.0),  # before the window: not counted
        _lag_line(T0 + 1, {"2": 90, "10": 9, "60": 1}, 55.0),
        _lag_line(T0 + 2, {"2": 95, "8": 5}, 7.5, limit=(3, 12)),
    ])  # fmt: skip
    [w] = workerlog.worker_lag(tmp_path, T0, T0 + 60)
    assert (w["worker"], w["ticks"], w["p50_ms"], w["p99_ms"], w["max_ms"]) == (
        "worker-1",
        200,
        2.0,
        10.0,
        55.0,
    )
    assert (w["limit_low"], w["limit_high"], w["bound_ms"]) == (3, 40, 50.0)
    assert workerlog.worker_lag(tmp_path / "none", T0, T0 + 60) is None


def test_self_inflicted_retries_are_counted_apart_and_only_from_our_workers(tmp_path):
    own = {"cause": "worker loop late", "level": "warning"}
    _write_log(tmp_path, "worker-1", [
        _lag_line(T0 + 1, {"2": 10}, 2.0),
        {"ts": T0 + 2, "msg": "retrying", "job_id": "a", **own},
        {"ts": T0 + 3, "msg": "retrying", "job_id": "a", **own},
        {"ts": T0 + 3, "msg": "retrying", "job_id": "b", "cause": "redis"},  # a fault's: not ours
        {"ts": T0 + 4, "msg": "finish failed, retrying", "job_id": "c", **own},
        {"ts": T0 + 5, "msg": "job's end not recorded: left to its claim's expiry", "job_id": "d", **own},
    ])  # fmt: skip
    assert workerlog.self_inflicted(tmp_path, T0, T0 + 60) == {
        "retried": 1,
        "abandoned": 1,
        "finish_retries": 1,
    }
    _write_log(tmp_path / "other", "worker-1", [{"ts": T0, "msg": "something"}])
    assert workerlog.self_inflicted(tmp_path / "other", T0, T0 + 60) is None


def test_a_cpu_bound_worker_is_named_in_validity_and_its_lag_is_in_the_report(tmp_path):
    run_dir = write_run(tmp_path / "r", {"offload": samples_frame("offload", np.linspace(5, 50, 2500))})
    _write_log(run_dir, "worker-1", [_lag_line(T0 + 10, {"5": 50, "400": 50}, 420.0)])
    summary = build_report(run_dir)
    assert any("worker-1: worker CPU-bound (loop lag p99 400 ms" in n for n in summary["validity"]["notes"])
    assert summary["modes"]["offload"]["workers"][0]["p99_ms"] == 400.0
    assert "loop lag p50/p99/max 5 / 400 / 420 ms" in (run_dir / "report.md").read_text()
    assert "loop lag p50/p99/max" in (run_dir / "report.html").read_text()


def test_a_worker_under_its_bound_adds_no_note(tmp_path):
    run_dir = write_run(tmp_path / "r", {"offload": samples_frame("offload", np.linspace(5, 50, 2500))})
    _write_log(run_dir, "worker-1", [_lag_line(T0 + 10, {"5": 990, "40": 10}, 38.0)])
    assert not any("CPU-bound" in n for n in build_report(run_dir)["validity"]["notes"])

"""Each validity check fires on the data that should trip it, and a clean run stays valid."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.report import build_report
from tests.analysis.runs import T0, samples_frame, write_run

N = 2500  # enough for p95 (200) and p99 (1000)


def _frame(mode="offload", **kw):
    return samples_frame(mode, np.linspace(5, 50, N), **kw)


def _loadgen(cpu=30.0, scheduled=0, late=0, dropped=0):
    return {"proc": "p0", "model": "open", "scheduled": scheduled, "sent": scheduled - dropped, "late": late,
            "dropped": dropped, "late_threshold_ms": 50.0, "cpu_percent": [[T0 + i, cpu] for i in range(10)]}  # fmt: skip


def _notes(run_dir):
    return build_report(run_dir)["validity"]


def test_clean_run_is_valid(tmp_path):
    validity = _notes(write_run(tmp_path / "r", {"noop": _frame("noop")}, loadgen={"noop": _loadgen()}))
    assert validity["valid"], validity["notes"]


def test_saturated_load_generator(tmp_path):
    v = _notes(write_run(tmp_path / "r", {"noop": _frame("noop")}, loadgen={"noop": _loadgen(cpu=95.0)}))
    assert not v["valid"] and any("CPU" in n for n in v["notes"])


def test_late_and_dropped_arrivals(tmp_path):
    lg = _loadgen(scheduled=N + 30, late=100, dropped=30)
    v = _notes(
        write_run(tmp_path / "r", {"noop": _frame("noop", model="open")}, model="open", loadgen={"noop": lg})
    )
    assert any("sent late" in n for n in v["notes"]) and any("never sent" in n for n in v["notes"])


def test_error_rate_over_threshold(tmp_path):
    ok = np.ones(N, dtype=int)
    ok[:50] = 0  # 2 %
    v = _notes(write_run(tmp_path / "r", {"sync": _frame("sync", ok=ok)}))
    assert any("error rate 2.00%" in n for n in v["notes"])


def test_locust_count_differs_from_samples(tmp_path):
    run_dir = write_run(
        tmp_path / "r", {"noop": _frame("noop")}, modes_meta={"noop": {"locust_requests": N + 7}}
    )
    assert any(f"Locust counted {N + 7}" in n for n in _notes(run_dir)["notes"])


def test_growing_backlog_says_the_rate_is_not_sustainable(tmp_path):
    ts = T0 + np.arange(0, 61, 1.0)
    queue = pd.DataFrame({"ts": ts, "ready": np.arange(ts.size) * 20, "deferred": 0, "in_progress": 8, "dlq": 0,
                          "completed": 0})  # fmt: skip
    v = _notes(write_run(tmp_path / "r", {"offload": _frame()}, queue=queue))
    assert any("backlog grew" in n and "not sustainable" in n for n in v["notes"])


def test_interrupted_run_is_marked(tmp_path):
    v = _notes(write_run(tmp_path / "r", {"noop": _frame("noop")}, status="interrupted"))
    assert not v["valid"] and any("interrupted" in n for n in v["notes"])

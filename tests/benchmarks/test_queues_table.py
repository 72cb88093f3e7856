"""The shoot-out's saturation figure from synthetic job records (no processes, no Redis)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from _queues_cells import Cell, rows_of  # noqa: E402
from _queues_table import cells_of, sat_cell, saturation, saturation_of_folder  # noqa: E402


def _job(
    i: int, enq: float, start: float | None, end: float | None, state: str = "done"
) -> dict[str, object]:
    attempts = [] if start is None else [{"try": 1, "start_ts": start, "end_ts": end, "outcome": "success"}]
    return {"job_id": f"j{i}", "state": state, "enqueued_ts": enq, "done_ts": end, "attempts": attempts}


def test_rate_is_done_jobs_over_first_start_to_last_end() -> None:
    # 10 jobs all enqueued in the first second, one worker runs them back to back, 0.2 s each from t=1
    records = [_job(i, i * 0.1, 1 + i * 0.2, 1.2 + i * 0.2) for i in range(10)]
    records.append(_job(99, 0.5, 0.6, None, state="pending"))  # not done: neither counted nor its start
    sat = saturation(records, "rq")
    assert sat["jobs_per_s"] == pytest.approx(10 / 2.0)
    assert sat["window_s"] == pytest.approx(2.0)
    assert sat["basis"].startswith("first start")
    assert sat["backlog_s"] == pytest.approx(3.0 - 0.9)
    assert sat["saturated"] is True
    assert sat_cell({"saturation": sat}) == "5.0"


def test_no_start_time_uses_the_intervals_between_ends() -> None:
    records = [_job(i, 0.0, None, 1.0 + i * 0.25) for i in range(5)]  # Celery: date_done only
    sat = saturation(records, "celery")
    assert sat["jobs_per_s"] == pytest.approx(4 / 1.0)
    assert "no start time" in sat["basis"]
    assert sat_cell({"saturation": sat}) == "4.0†"


def test_a_worker_that_kept_up_is_not_called_saturated() -> None:
    records = [_job(i, i * 0.5, i * 0.5, i * 0.5 + 0.2) for i in range(6)]
    sat = saturation(records, "arq")
    assert sat["saturated"] is False
    assert sat_cell({"saturation": sat}) == "≥ 2.2 (kept up: not saturated)"


def test_no_end_time_is_said_never_zero() -> None:
    records = [_job(i, 0.0, None, None, state="unknown") for i in range(3)]
    sat = saturation(records, "dramatiq")
    assert sat["jobs_per_s"] is None
    assert sat_cell({"saturation": sat}) == "n/a — dramatiq keeps no end time"
    assert saturation([], "x")["note"] == "n/a — no job records"


def test_from_a_run_folder_skips_bad_lines(tmp_path: Path) -> None:
    (tmp_path / "jobs").mkdir()
    lines = [json.dumps(_job(i, 0.0, 1 + i * 0.2, 1.2 + i * 0.2)) for i in range(4)]
    (tmp_path / "jobs" / "offload.jsonl").write_text("\n".join([*lines, "{not json", "[1]"]) + "\n")
    sat = saturation_of_folder(tmp_path, "offload", "saq")
    assert sat["done"] == 4
    assert sat["jobs_per_s"] == pytest.approx(4 / 0.8)


def test_a_cell_not_run_prints_the_reason() -> None:
    row = {"library": "dramatiq", "settings": "defaults", "fault": "none (saturation)", "mode": "offload",
           "requests": None, "saturation": {"jobs_per_s": None, "note": "n/a — dramatiq keeps no end time"}}  # fmt: skip
    printed = cells_of(row)
    assert "n/a — dramatiq keeps no end time" in printed
    assert "0" not in printed


def test_a_cell_s_rows_say_what_a_library_cannot_give_never_0(tmp_path: Path) -> None:
    summary = {
        "modes": {"offload": {"requests": 40, "latency_ms": {"p50": 1.5, "p99": float("nan")},
                              "jobs": {"accepted": 40, "completed": 39, "lost": 0, "queue_wait_ms": None,
                                       "e2e_ms": {"p95": 250.0}}}},
        "run": {"modes": {"offload": {"tracker": {"notes": ["dramatiq keeps no end time"]}}}},
        "reliability": {"faults": [{"mode": "offload", "recovery_s": 1.25, "jobs": {"lost": 0}}]},
    }  # fmt: skip
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    cell = Cell("rq", "defaults", "worker-sigkill@3s", ["offload"], "examples/rq/target.toml")
    (row,) = rows_of(cell, 0, tmp_path)
    assert (row["api_p50_ms"], row["api_p99_ms"], row["e2e_p95_ms"]) == (1.5, None, 250.0)
    assert row["queue_wait_p50_ms"] is None and row["queue_wait_note"] == "n/a — rq keeps no start time"
    assert (row["accepted"], row["completed"], row["recovery_s"]) == (40, 39, 1.25)
    assert row["tracker_notes"] == ["dramatiq keeps no end time"] and row["saturation"] is None
    (failed,) = rows_of(cell, 3, None)
    assert failed["error"] == "did not run (exit 3)"
    skipped = Cell("dramatiq", "defaults", "", ["offload"], None, skip="no end time")
    (row,) = rows_of(skipped, 0, None)
    assert row["saturation"] == {"jobs_per_s": None, "note": "no end time"}

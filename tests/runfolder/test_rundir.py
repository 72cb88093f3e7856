"""Run folders: creation, the latest link, deep-merged atomic run.json updates, clear errors."""

from __future__ import annotations

import json

import pytest

from runfolder.rundir import RunDirError, create_run_dir, read_run_json, update_run_json


def test_create_points_latest_and_records_metadata(tmp_path):
    first = create_run_dir(tmp_path / "runs")
    second = create_run_dir(tmp_path / "runs")
    assert first != second
    assert (tmp_path / "latest").resolve() == second.resolve()
    data = read_run_json(second)
    assert data["schema_version"] == 1 and data["status"] == "running"
    assert data["meta"]["cpu_count"] >= 1 and data["run_id"] == second.name


def test_update_deep_merges(tmp_path):
    run = create_run_dir(tmp_path / "runs", run_id="r1")
    update_run_json(run, {"modes": {"sync": {"start_ts": 1.0}}})
    update_run_json(run, {"modes": {"sync": {"end_ts": 2.0}, "noop": {"start_ts": 3.0}}})
    modes = json.loads((run / "run.json").read_text())["modes"]
    assert modes == {"sync": {"start_ts": 1.0, "end_ts": 2.0}, "noop": {"start_ts": 3.0}}


def test_errors_are_one_line(tmp_path):
    with pytest.raises(RunDirError, match="not found"):
        read_run_json(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirError, match="no run.json"):
        read_run_json(tmp_path / "empty")
    (tmp_path / "empty" / "run.json").write_text("{trunc")
    with pytest.raises(RunDirError, match="cannot read") as err:
        read_run_json(tmp_path / "empty")
    assert "\n" not in str(err.value)

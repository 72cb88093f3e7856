"""Run folders: creation, the latest link, deep-merged atomic run.json updates, clear errors."""

from __future__ import annotations

import json

import pytest

from runfolder.rundir import RunDirError, create_run_dir, read_run_json, update_run_json


def test_create_points_latest_and_records_metadata(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default location, reports/runs, is the one that gets reports/latest
    first = create_run_dir()
    second = create_run_dir()
    assert first != second
    assert (tmp_path / "reports" / "latest").resolve() == second.resolve()
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


def test_the_sample_row_is_one_definition_of_order_and_types():
    from runfolder.schema import SAMPLE_COLUMNS, SampleRow, sample_dtypes, sample_from_csv

    assert SAMPLE_COLUMNS == SampleRow._fields and SAMPLE_COLUMNS[:2] == ("intended_ts", "start_ts")
    dtypes = sample_dtypes()
    assert list(dtypes) == list(SAMPLE_COLUMNS)
    assert dtypes["latency_ms"] == "float64" and dtypes["status"] == "int32" and dtypes["mode"] == "category"
    assert sample_dtypes(["ok", "job_id"]) == {"ok": "int8", "job_id": "object"}
    text = [
        "1.5",
        "1.5",
        "3.25",
        "4",
        "offload",
        "POST /offload/sources",
        "202",
        "1",
        "",
        "10",
        "j1",
        "s1",
        "open",
        "p0",
    ]
    row = sample_from_csv(dict(zip(SAMPLE_COLUMNS, text, strict=True)))
    assert row.latency_corrected_ms == 4.0 and row.status == 202 and row.ok == 1 and row.job_id == "j1"
    with pytest.raises(ValueError):
        sample_from_csv(dict(zip(SAMPLE_COLUMNS, ["x", *text[1:]], strict=True)))


def test_every_write_stays_inside_the_folder_the_user_named(tmp_path):
    # issue 14.10: --out names the folder; the `latest` link used to be replaced in its parent
    user = tmp_path / "user"
    user.mkdir()
    (tmp_path / "latest").write_text("someone else's file")
    run = create_run_dir(user / "runs")
    assert run.parent == user / "runs"
    assert sorted(p.name for p in user.iterdir()) == ["runs"]
    assert (tmp_path / "latest").read_text() == "someone else's file"


def test_safe_name_keeps_names_from_files_inside_a_folder(tmp_path):
    from runfolder.rundir import safe_name

    for hostile in ("../../etc/x", "..", "/abs/path", "a/b", "", ".", "x\x00y", "~root"):
        name = safe_name(hostile)
        assert name and "/" not in name and name not in (".", "..") and "\x00" not in name
        assert (tmp_path / name).resolve().parent == tmp_path.resolve()
    assert safe_name("20260101-000000-ab12") == "20260101-000000-ab12"
    assert safe_name("offload") == "offload"

"""Bad input through the CLI (`offload-bench report`): one line, exit 2, no traceback; partial runs still produce
what they can, marked.

One test runs the installed console script as a subprocess; the others call its entry point in-process (the
same code path, without ~2 s of imports per call: the suite's time is watched).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.analysis.runs import CLI, copy_golden


@pytest.fixture
def report_cli(capsys, monkeypatch):
    """report(*args) -> (exit code, stdout, stderr) of `offload-bench report ARGS` run by bench.cli.main."""
    from bench.cli import main

    def run(*args):
        monkeypatch.setattr(sys, "argv", ["offload-bench", "report", *map(str, args)])
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return code, out, err

    return run


def _assert_error(code, err, *words):
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    for word in words:
        assert word in lines[0]


def test_good_run_writes_every_output(tmp_path):
    """The installed console script, as a person runs it."""
    run_dir = copy_golden(tmp_path / "run")
    proc = subprocess.run(
        [str(CLI), "report", str(run_dir)], capture_output=True, text=True, timeout=90, check=False
    )
    code, out = proc.returncode, proc.stdout
    assert "Traceback" not in out + proc.stderr
    assert code == 0, proc.stderr
    assert out.strip().endswith("report.html")
    for name in ("summary.json", "report.md", "report.html", "plots/latency_percentiles.png"):
        assert (run_dir / name).is_file(), name


def test_missing_folder(tmp_path, report_cli):
    code, _, err = report_cli(tmp_path / "nope")
    _assert_error(code, err, "does not exist")


def test_folder_without_run_json(tmp_path, report_cli):
    run_dir = copy_golden(tmp_path / "run")
    (run_dir / "run.json").unlink()
    code, _, err = report_cli(run_dir)
    _assert_error(code, err, "run.json")


def test_wrong_schema_version(tmp_path, report_cli):
    run_dir = copy_golden(tmp_path / "run")
    run = json.loads((run_dir / "run.json").read_text())
    run["schema_version"] = 99
    (run_dir / "run.json").write_text(json.dumps(run))
    code, _, err = report_cli(run_dir)
    _assert_error(code, err, "schema_version 99")


def test_empty_sample_file_is_noted_and_the_rest_reported(tmp_path, report_cli):
    run_dir = copy_golden(tmp_path / "run")
    (run_dir / "samples" / "offload-p1.csv").write_text("")
    code, _, err = report_cli(run_dir)
    assert code == 0, err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert "samples/offload-p1.csv: empty file" in summary["validity"]["notes"]
    assert summary["modes"]["offload"]["requests"] == 13  # p0's rows still count


def test_all_sample_files_empty(tmp_path, report_cli):
    run_dir = copy_golden(tmp_path / "run")
    for path in (run_dir / "samples").glob("*.csv"):
        path.write_text("")
    code, _, err = report_cli(run_dir)
    _assert_error(code, err, "no samples")


def test_truncated_sample_file_still_reports_marked(tmp_path, report_cli):
    run_dir = copy_golden(tmp_path / "run")
    path = run_dir / "samples" / "noop-p0.csv"
    path.write_bytes(path.read_bytes()[:-9])  # killed mid-write: the last row lost its tail
    code, _, err = report_cli(run_dir)
    assert code == 0, err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["modes"]["noop"]["requests"] == 29
    assert any("noop-p0.csv: last line truncated" in n for n in summary["validity"]["notes"])
    assert not summary["validity"]["valid"]
    assert "warning:" in err


def test_mode_without_samples_is_a_marked_partial_report(tmp_path, report_cli):
    run_dir = copy_golden(tmp_path / "run")
    for path in (run_dir / "samples").glob("offload-*.csv"):
        path.unlink()
    code, _, err = report_cli(run_dir)
    assert code == 0, err
    summary = json.loads((run_dir / "summary.json").read_text())
    offload = summary["modes"]["offload"]
    assert offload["partial"] is True and offload["requests"] == 0 and offload["latency_ms"]["p95"] is None
    assert "mode offload: no samples (partial run)" in summary["validity"]["notes"]
    assert summary["modes"]["sync"]["partial"] is False
    assert "offload (partial)" in (run_dir / "report.md").read_text()
    assert "offload: partial" in err


def test_bad_header(tmp_path, report_cli):
    run_dir = copy_golden(tmp_path / "run")
    (run_dir / "samples" / "sync-p0.csv").write_text("ts,latency\n1,2\n")
    code, _, err = report_cli(run_dir)
    _assert_error(code, err, "sync-p0.csv", "header")


def test_unknown_percentile_and_negative_warmup(tmp_path, report_cli):
    run_dir = copy_golden(tmp_path / "run")
    code, _, err = report_cli(run_dir, "--percentile", "p42")
    _assert_error(code, err, "p42")
    code, _, err = report_cli(run_dir, "--warmup-s", "-1")
    _assert_error(code, err, "warmup")


def test_options_percentile_warmup_and_out(tmp_path, report_cli):
    run_dir = copy_golden(tmp_path / "run")
    out = tmp_path / "elsewhere"
    code, _, err = report_cli(run_dir, "--percentile", "p50", "--warmup-s", "2", "--out", out)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["warmup_s"] == 2.0
    assert summary["modes"]["sync"]["target"]["percentile"] == "p50"
    assert summary["modes"]["sync"]["requests"] == 22  # 30 samples 0.25 s apart: the first 8 are warm-up
    assert not (run_dir / "summary.json").exists()


def test_warmup_longer_than_the_run_gives_a_marked_partial_report(tmp_path):
    from analysis.report import build_report

    summary = build_report(copy_golden(tmp_path / "run"), warmup_s=1000.0)
    assert all(m["partial"] and m["requests"] == 0 for m in summary["modes"].values())
    assert "mode sync: no samples after the 1000 s warm-up (partial run)" in summary["validity"]["notes"]
    assert "(partial)" in (tmp_path / "run" / "report.md").read_text()

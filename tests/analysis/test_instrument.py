"""The instrument's own error beside the figures it affects: send lateness (exact, from the samples) and the
load generator's CPU, in summary.json, report.md and report.html; validity flags a late generator by a
threshold that is data (thresholds.toml)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis.config import load_thresholds
from analysis.render import ms
from analysis.report import build_report
from tests.analysis.runs import T0, samples_frame, write_run

N = 3000


def _open_run(tmp_path, lag_ms, cpu=(40.0, 70.0)):
    rng = np.random.default_rng(3)
    latency = rng.lognormal(1.0, 0.5, N).round(3)
    frame = samples_frame("noop", latency, corrected_ms=(latency + lag_ms).round(3), model="open")
    frame["start_ts"] = frame["intended_ts"] + lag_ms / 1000
    loadgen = {"proc": "p0", "model": "open", "scheduled": N, "sent": N, "late": 2, "dropped": 0,
               "late_threshold_ms": 50.0, "cpu_percent": [[T0 + i, cpu[i % 2]] for i in range(10)]}  # fmt: skip
    run_dir = write_run(tmp_path / "r", {"noop": frame}, model="open", loadgen={"noop": loadgen})
    return run_dir, frame


def test_send_lateness_is_exact_and_shown_beside_the_latency(tmp_path):
    lag_ms = np.random.default_rng(5).exponential(0.8, N)
    run_dir, frame = _open_run(tmp_path, lag_ms)
    summary = build_report(run_dir)
    mode = summary["modes"]["noop"]
    # the same subtraction analysis does, on the values as written to the CSV file
    written = (frame["start_ts"].to_numpy() - frame["intended_ts"].to_numpy()) * 1000
    expected = np.percentile(written, [50, 99], method="inverted_cdf")
    late = mode["send_lateness_ms"]
    assert [late["p50"], late["p99"]] == pytest.approx(list(expected), rel=1e-9)
    assert late["max"] == pytest.approx(written.max(), rel=1e-9) and late["samples"] == N
    gen = mode["load_generator"]
    assert gen["processes"] == 1 and gen["cpu_percent_mean"] == 55.0 and gen["cpu_percent_max"] == 70.0
    assert (gen["scheduled"], gen["late"], gen["dropped"]) == (N, 2, 0)
    md = (run_dir / "report.md").read_text()
    assert "### The instrument's own error" in md
    row = next(line for line in md.splitlines() if line.startswith("| noop |") and " / " in line)
    assert f"| {ms(expected[0])} / {ms(expected[1])} / {ms(written.max())} |" in row and "55 / 55 / 70" in row
    html = (run_dir / "report.html").read_text()
    assert "The instrument's own error" in html and "55 / 55 / 70" in html
    assert json.loads((run_dir / "summary.json").read_text())["modes"]["noop"]["send_lateness_ms"] == late


def test_a_late_generator_invalidates_the_run_by_the_thresholds_file(tmp_path):
    th = load_thresholds()
    run_dir, _ = _open_run(tmp_path, np.full(N, th.send_lateness_p99_max_ms * 2))
    notes = build_report(run_dir)["validity"]["notes"]
    assert any("send lateness p99" in n for n in notes)
    loose = (
        tmp_path / "loose.toml"
    )  # a file with only this key: every other threshold keeps its packaged value
    loose.write_text(f"[validity]\nsend_lateness_p99_max_ms = {th.send_lateness_p99_max_ms * 4}\n")
    relaxed = load_thresholds(loose)
    assert (
        relaxed.send_lateness_p99_max_ms == th.send_lateness_p99_max_ms * 4 and relaxed.fast_ms == th.fast_ms
    )
    summary = build_report(run_dir, thresholds=relaxed)
    assert not any("send lateness" in n for n in summary["validity"]["notes"])
    assert summary["validity"]["valid"], summary["validity"]["notes"]


def test_closed_model_has_no_lateness_but_shows_the_generator_cpu(tmp_path):
    frame = samples_frame("noop", np.linspace(1, 20, N))
    loadgen = {"proc": "p0", "model": "closed", "cpu_percent": [[T0, 20.0], [T0 + 1, 30.0]]}
    summary = build_report(write_run(tmp_path / "r", {"noop": frame}, loadgen={"noop": loadgen}))
    mode = summary["modes"]["noop"]
    assert mode["send_lateness_ms"] is None and mode["load_generator"]["cpu_percent_busiest"] == 25.0
    assert "closed model: no schedule" in (tmp_path / "r" / "report.md").read_text()

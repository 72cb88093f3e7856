"""summary.json layout (CONTRACTS.md), report.md, self-contained report.html (rendered in headless Chromium), plots."""

from __future__ import annotations

import json
import re
import sys

import numpy as np
import pandas as pd
import pytest

from analysis.plots import nines_curve, plot_percentiles
from analysis.report import build_report
from analysis.synthetic import write_synthetic_run
from tests.analysis.runs import REPO

sys.path.insert(0, str(REPO / "scripts"))
import screenshot_report  # noqa: E402

REQUIRED_MODE_KEYS = ("requests", "failures", "failures_by_kind", "error_rate", "rps", "duration_s", "latency_ms",
                      "latency_uncorrected_ms", "latency_basis", "enough_samples", "target", "windows")  # fmt: skip
JOB_KEYS = ("accepted", "completed", "retried", "dead_lettered", "redriven", "pending", "lost", "duplicates",
            "queue_wait_ms", "e2e_ms", "queue_depth_max", "backlog_end", "drain_s")  # fmt: skip


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    run_dir = write_synthetic_run(tmp_path_factory.mktemp("synthetic") / "run", procs=2)
    build_report(run_dir)
    return run_dir


def test_summary_has_the_contract_layout(report_dir):
    s = json.loads((report_dir / "summary.json").read_text())
    assert s["schema_version"] == 1 and s["run"]["run_id"] == "run" and s["warmup_s"] == 5.0
    assert set(s["modes"]) == {"noop", "sync", "offload"}
    for m in s["modes"].values():
        assert all(k in m for k in REQUIRED_MODE_KEYS)
        assert set(m["latency_ms"]) == {"p50", "p90", "p95", "p99", "p999", "max", "mean"}
        assert {"percentile", "verdict", "verdicts", "apdex", "fast_ms", "slow_ms"} <= set(m["target"])
        assert {"window_s", "start_ts", "requests", "p50", "p95", "p99"} <= set(m["windows"])
    jobs = s["modes"]["offload"]["jobs"]
    assert all(k in jobs for k in JOB_KEYS) and set(jobs["e2e_ms"]) == {"p50", "p95", "p99"}
    assert set(s["comparison"]["api_speedup"]) == {"p50", "p95", "p99"}
    assert set(s["comparison"]["work_wait_ms"]) == {"sync", "offload_e2e"}
    assert "faults" in s["reliability"] and {"valid", "notes"} <= set(s["validity"])


def test_markdown_leads_with_the_headline_table(report_dir):
    md = (report_dir / "report.md").read_text()
    lines = md.splitlines()
    assert lines[2].startswith(
        "| mode | requests | req/s | p50 ms | p95 ms | p99 ms | verdict (p95) | Apdex | errors |"
    )
    assert any(line.startswith("| sync |") and "slow" in line for line in lines)
    assert "### What offloading buys" in md and "### Offload jobs" in md
    assert len(md.encode()) < 64_000  # GitHub step summaries are limited to 1 MiB; keep it small


def test_html_is_self_contained(report_dir):
    html = (report_dir / "report.html").read_text()
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing fetched from the network
    assert "<link" not in html and "<script" not in html
    assert html.count('src="data:image/png;base64,') == 5
    assert "<style>" in html


def test_plots_do_not_leak_pyplot_figures(report_dir):
    import matplotlib.pyplot as plt  # only to look at its global state

    assert plt.get_fignums() == []
    for name in ("latency_percentiles", "latency_over_time", "throughput", "queue_depth", "offload_e2e"):
        assert (report_dir / "plots" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_percentiles_overlays_runs(tmp_path):
    rng = np.random.default_rng(0)
    path = plot_percentiles(
        {"baseline": rng.lognormal(3, 1, 5000), "candidate": rng.lognormal(3.2, 1, 5000)}, tmp_path / "o.png"
    )
    assert screenshot_report.ink_fraction(path) > 0.02


def test_nines_curve_follows_inverted_cdf():
    values = np.arange(1, 1001, dtype=float)
    x, y = nines_curve(values)
    for q in (0.5, 0.9, 0.99):
        i = np.argmin(np.abs(x - -np.log10(1 - q)))
        assert y[i] == pytest.approx(np.percentile(values, 100 * (1 - 10 ** -x[i]), method="inverted_cdf"))


@pytest.mark.needs_tool("chromium")
def test_report_html_renders_in_headless_chromium(report_dir, tmp_path):
    png = screenshot_report.screenshot(report_dir / "report.html", tmp_path / "shot.png", 1280, 2000)
    assert screenshot_report.ink_fraction(png) > screenshot_report.MIN_INK_FRACTION


def test_blank_page_is_detected(tmp_path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 4))
    fig.savefig(tmp_path / "blank.png")
    assert screenshot_report.ink_fraction(tmp_path / "blank.png") < screenshot_report.MIN_INK_FRACTION


def test_injected_faults_are_reported_and_shaded(tmp_path):
    run_dir = write_synthetic_run(tmp_path / "run", {"noop": 300, "offload": 600}, procs=1)
    start = json.loads((run_dir / "run.json").read_text())["modes"]["offload"]["start_ts"]
    faults = [
        {
            "name": "worker-kill",
            "ts": start + 20.0,
            "end_ts": start + 21.5,
            "detail": {"worker": "w1", "exit_code": -9},
        },
        {"name": "transient-burst", "ts": None, "end_ts": None, "detail": "transient_rate=0.5"},
    ]
    (run_dir / "faults.json").write_text(json.dumps(faults))
    summary = build_report(run_dir)
    reported = summary["reliability"]["faults"]
    assert [{k: f[k] for k in faults[0]} for f in reported] == faults  # the records, plus their effects
    assert reported[0]["api"]["requests"] > 0 and reported[0]["api"]["errors"] == 0
    assert "recovery_s" in reported[0] and "jobs" in reported[0] and "api" not in reported[1]
    html = (run_dir / "report.html").read_text()
    assert (
        "Injected faults" in html
        and "worker=w1, exit_code=-9" in html
        and "<td>20.0</td><td>1.5</td>" in html
    )
    md = (run_dir / "report.md").read_text()
    assert "| worker-kill | 20.0 | 1.5 | 0 of " in md and "| worker=w1, exit_code=-9 |" in md
    assert "| transient-burst | – | – | – | – | – | transient_rate=0.5 |" in md


def test_each_fault_is_judged_in_the_mode_its_record_names(tmp_path):
    """api faults fire once per mode with jobs (detail.mode): each row is judged against that mode's samples
    and jobs and timed from that mode's start; a record naming no mode stays the offload phase's."""
    run_dir = write_synthetic_run(tmp_path / "run", {"inprocess": 300, "offload": 600}, procs=1)
    modes = json.loads((run_dir / "run.json").read_text())["modes"]
    inproc, offload = modes["inprocess"]["start_ts"], modes["offload"]["start_ts"]
    faults = [
        {"name": "api-sigkill", "ts": inproc + 20.0, "end_ts": inproc + 21.0,
         "detail": {"mode": "inprocess", "exit_code": -9}},
        {"name": "api-sigkill", "ts": offload + 20.0, "end_ts": offload + 21.0,
         "detail": {"mode": "offload", "exit_code": -9}},
        {"name": "worker-sigkill", "ts": offload + 30.0, "end_ts": offload + 30.5, "detail": {"worker": "w1"}},
    ]  # fmt: skip
    (run_dir / "faults.json").write_text(json.dumps(faults))
    summary = build_report(run_dir)
    reported = summary["reliability"]["faults"]
    assert [f["mode"] for f in reported] == ["inprocess", "offload", "offload"]
    samples = pd.read_csv(run_dir / "samples" / "inprocess-p0.csv")
    in_window = samples["intended_ts"].between(inproc + 20.0 - 1.0, inproc + 21.0 + 1.0)
    # the inprocess kill's window holds inprocess requests (offload's samples have none at that time)
    assert reported[0]["api"]["requests"] == int(in_window.sum()) > 0
    # no inprocess jobs or queue in this folder: none cut, no recovery (not offload's)
    assert reported[0]["jobs"]["in_flight"] == 0 and reported[0]["recovery_s"] is None
    assert reported[1]["api"]["requests"] > 0 and reported[1]["jobs"]["in_flight"] > 0
    md = (run_dir / "report.md").read_text()
    assert "| api-sigkill | 20.0 (inprocess) | 1.0 |" in md and "| api-sigkill | 20.0 (offload) | 1.0 |" in md
    assert "| worker-sigkill | 30.0 | 0.5 |" in md
    assert "<td>20.0 (inprocess)</td>" in (run_dir / "report.html").read_text()

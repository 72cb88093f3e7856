"""Exact percentiles (numpy inverted_cdf), verdicts, Apdex, sample sufficiency and per-window percentiles."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from analysis.config import PERCENTILES, load_thresholds
from analysis.report import build_report
from analysis.stats import apdex, verdict, windows
from analysis.synthetic import write_synthetic_run
from tests.analysis.runs import samples_frame, write_run

TH = load_thresholds()


def _raw_latencies(run_dir, mode, cut_ts):
    """Latencies read back with the csv module (independent of the analysis' pandas path)."""
    out = []
    for path in sorted((run_dir / "samples").glob(f"{mode}-*.csv")):
        with path.open() as fh:
            out += [float(r["latency_ms"]) for r in csv.DictReader(fh) if float(r["intended_ts"]) >= cut_ts]
    return np.array(out)


@pytest.mark.parametrize("seed", [1, 2])
def test_percentiles_equal_numpy_exact_over_merged_process_files(tmp_path, seed):
    run_dir = write_synthetic_run(
        tmp_path / "run", {"noop": 3001, "sync": 1500, "offload": 2222}, procs=3, seed=seed, warmup_s=5.0
    )
    summary = build_report(run_dir)
    run = json.loads((run_dir / "run.json").read_text())
    for mode, m in summary["modes"].items():
        raw = _raw_latencies(run_dir, mode, run["modes"][mode]["start_ts"] + 5.0)
        assert m["requests"] == raw.size
        expected = np.percentile(raw, list(PERCENTILES.values()), method="inverted_cdf")
        assert [m["latency_ms"][k] for k in PERCENTILES] == pytest.approx(list(expected), rel=0, abs=0)
        assert m["latency_ms"]["max"] == raw.max()
        assert m["latency_ms"]["mean"] == pytest.approx(raw.mean())
        for k in PERCENTILES:  # an observed value, never an interpolation
            assert m["latency_ms"][k] in set(raw.tolist())


def test_three_percent_at_1049_ms_reads_1049_and_is_slow(tmp_path):
    rng = np.random.default_rng(7)
    fast = rng.uniform(20, 80, 970)
    latency = rng.permutation(np.concatenate([fast, np.full(30, 1049.0)]))
    run_dir = write_run(tmp_path / "run", {"sync": samples_frame("sync", latency)})
    m = build_report(run_dir, percentile="p99")["modes"]["sync"]
    assert m["latency_ms"]["p99"] >= 1049.0
    assert m["latency_ms"]["p99"] == np.percentile(latency, 99, method="inverted_cdf") == 1049.0
    assert m["target"]["verdicts"]["p99"] == "slow"
    assert m["target"]["verdict"] == "slow" and m["target"]["percentile"] == "p99"
    assert m["target"]["verdicts"]["p50"] == "fast"


def test_verdict_boundaries():
    assert verdict(99.999, TH) == "fast"
    assert verdict(100.0, TH) == "ok"
    assert verdict(1000.0, TH) == "ok"
    assert verdict(1000.001, TH) == "slow"
    assert verdict(None, TH) is None


def test_apdex_counts_failures_as_frustrated():
    lat = np.array([50.0, 50.0, 500.0, 500.0, 5000.0, 10.0])
    ok = np.array([True, True, True, True, True, False])
    # satisfied 2, tolerating 2 (half each), frustrated: the 5 s one and the fast failure
    assert apdex(lat, ok, TH) == pytest.approx((2 + 2 / 2) / 6)
    assert apdex(np.zeros(0), np.zeros(0, dtype=bool), TH) is None


def test_enough_samples_rule_is_ten_beyond_the_percentile():
    assert {k: TH.min_samples(k) for k in PERCENTILES} == {
        "p50": 20, "p90": 100, "p95": 200, "p99": 1000, "p999": 10000,
    }  # fmt: skip


def test_enough_samples_flags_per_percentile(tmp_path):
    run_dir = write_run(tmp_path / "run", {"noop": samples_frame("noop", np.linspace(1, 9, 150))})
    summary = build_report(run_dir)
    enough = summary["modes"]["noop"]["enough_samples"]
    assert enough == {"p50": True, "p90": True, "p95": False, "p99": False, "p999": False}
    assert not summary["validity"]["valid"]  # the headline p95 lacks samples
    assert any("p95" in n for n in summary["validity"]["notes"])


def test_windows_match_numpy_per_window():
    rng = np.random.default_rng(3)
    ts = np.sort(rng.uniform(0, 31, 5000))
    lat = rng.lognormal(3, 1, 5000)
    win = windows(ts, lat, 0.0, 5.0)
    assert win["start_ts"] == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0]
    for i, start in enumerate(win["start_ts"]):
        chunk = lat[(ts >= start) & (ts < start + 5.0)]
        assert win["requests"][i] == chunk.size
        for key, q in (("p50", 50), ("p95", 95), ("p99", 99)):
            assert win[key][i] == np.percentile(chunk, q, method="inverted_cdf")


def test_failures_by_kind_and_error_rate(tmp_path):
    ok = np.ones(400, dtype=int)
    status = np.full(400, 201)
    ok[:6], status[:3], status[3:5], status[5] = 0, 500, 0, 201  # 3 HTTP 500, 2 no response, 1 semantic
    run_dir = write_run(
        tmp_path / "run", {"sync": samples_frame("sync", np.full(400, 50.0), ok=ok, status=status)}
    )
    m = build_report(run_dir)["modes"]["sync"]
    assert m["failures"] == 6
    assert m["failures_by_kind"] == {"http_500": 3, "no_response": 2, "semantic": 1}
    assert m["error_rate"] == pytest.approx(6 / 400)

"""One step's numbers from its run folder: summary.json (the ordinary analysis) plus what a search needs on top.

On top of the summary: whether the generator sent the scheduled arrivals on time (loadgen/), the growth of
requests in flight through the measured window (samples/: a server falling behind, seen before its latency
crosses a threshold in a short step), the responses and jobs completed per second in that window.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from bench.capacity.model import Step
from bench.capacity.verdict import Limits
from runfolder.schema import JOBS_DIR, LOADGEN_DIR, SAMPLES_DIR, SUMMARY_FILE

GRID_S: Final = 0.1  # in-flight is sampled this often through the window


def limits_from(summary: dict[str, Any]) -> Limits:
    """The thresholds the run was analysed with, as step limits."""
    th = summary.get("thresholds") or {}
    defaults = Limits()
    return Limits(
        fast_ms=float(th.get("fast_ms", defaults.fast_ms)),
        slow_ms=float(th.get("slow_ms", defaults.slow_ms)),
        error_rate_max=float(th.get("error_rate_max", defaults.error_rate_max)),
        slope_min_per_s=float(th.get("backlog_slope_min_per_s", defaults.slope_min_per_s)),
        slope_frac_of_rate=float(th.get("backlog_slope_frac_of_rate", defaults.slope_frac_of_rate)),
    )


def _slope(t: np.ndarray, y: np.ndarray) -> float | None:
    if t.size < 3 or float(np.ptp(t)) <= 0:
        return None
    return float(np.polyfit(t - t[0], y, 1)[0])


def _window(summary: dict[str, Any], mode: str) -> tuple[float, float] | None:
    """(first measured second, end of load) of mode, as the analysis cut it."""
    run = summary.get("run") or {}
    meta = (run.get("modes") or {}).get(mode) or {}
    start = meta.get("start_ts")
    if start is None:
        return None
    m = summary["modes"][mode]
    w0 = float(start) + float(summary.get("warmup_s") or 0.0)
    return w0, w0 + float(m.get("duration_s") or 0.0)


def _samples(run_dir: Path, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(intended start, completion) epoch seconds of every sample of mode, sorted each."""
    cols = ["intended_ts", "start_ts", "latency_ms"]
    frames = [pd.read_csv(p, usecols=cols) for p in sorted((run_dir / SAMPLES_DIR).glob(f"{mode}-*.csv"))]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return np.zeros(0), np.zeros(0)
    df = pd.concat(frames, ignore_index=True).dropna()
    end = df["start_ts"].to_numpy() + df["latency_ms"].to_numpy() / 1000.0
    return np.sort(df["intended_ts"].to_numpy()), np.sort(end)


def inflight(run_dir: Path, mode: str, w0: float, w1: float) -> tuple[float | None, float | None]:
    """(growth of requests in flight per second, responses completed per second) over [w0, w1]."""
    intended, end = _samples(run_dir, mode)
    if intended.size == 0 or w1 <= w0:
        return None, None
    grid = np.arange(w0, w1, GRID_S)
    # a request is in the system from its intended start (open model) until its response
    count = np.searchsorted(intended, grid, "right") - np.searchsorted(end, grid, "right")
    done = np.searchsorted(end, w1, "right") - np.searchsorted(end, w0, "left")
    return _slope(grid, count.astype(float)), float(done) / (w1 - w0)


def job_rate(run_dir: Path, mode: str, w0: float, w1: float) -> float | None:
    """Jobs finished per second over [w0, w1], from the run's job records."""
    path = run_dir / JOBS_DIR / f"{mode}.jsonl"
    if not path.exists() or w1 <= w0:
        return None
    done = 0
    with path.open() as fh:
        for line in fh:
            if line.strip():
                ts = json.loads(line).get("done_ts")
                done += ts is not None and w0 <= float(ts) <= w1
    return done / (w1 - w0)


def generator(run_dir: Path, mode: str) -> tuple[float | None, float | None]:
    """(share of scheduled arrivals sent on time, mean CPU % of the busiest load process) from loadgen/."""
    scheduled = sent_late = 0
    cpu: list[float] = []
    for path in sorted((run_dir / LOADGEN_DIR).glob(f"{mode}-*.json")):
        rec = json.loads(path.read_text())
        scheduled += int(rec.get("scheduled") or 0)
        # dropped arrivals were never sent; late ones were sent after the late threshold
        sent_late += int(rec.get("late") or 0) + int(rec.get("dropped") or 0)
        samples = [s[1] for s in rec.get("cpu_percent") or [] if isinstance(s, list | tuple) and len(s) == 2]
        if samples:
            cpu.append(float(np.mean(samples)))
    on_time = (scheduled - sent_late) / scheduled if scheduled > 0 else None
    return on_time, (max(cpu) if cpu else None)


def read_step(run_dir: Path, mode: str, rate: float, percentile: str) -> tuple[Step, Limits]:
    """The measured (not yet judged) step of mode at rate from an analysed run folder."""
    summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    m = (summary.get("modes") or {}).get(mode) or {}
    lat = m.get("latency_ms") or {}
    raw = m.get("latency_uncorrected_ms") or {}
    jobs = m.get("jobs") or {}
    on_time, cpu = generator(run_dir, mode)
    window = _window(summary, mode) if m else None
    slope = achieved = jrate = None
    if window is not None:
        slope, achieved = inflight(run_dir, mode, *window)
        jrate = job_rate(run_dir, mode, *window) if jobs else None
    step = Step(
        rate=rate,
        achieved_rate=achieved,
        p50=lat.get("p50"),
        p95=lat.get("p95"),
        p99=lat.get("p99"),
        percentile_ms=lat.get(percentile),
        uncorrected_ms=raw.get(percentile),
        error_rate=m.get("error_rate"),
        requests=int(m.get("requests") or 0),
        enough_samples=bool((m.get("enough_samples") or {}).get(percentile, False)),
        sent_on_time=on_time,
        loadgen_cpu_percent=cpu,
        inflight_slope_per_s=slope,
        backlog_slope_per_s=jobs.get("backlog_slope_per_s"),
        jobs_accepted=jobs.get("accepted"),
        jobs_lost=jobs.get("lost"),
        job_rate=jrate,
        run_dir=str(run_dir),
    )
    return step, limits_from(summary)

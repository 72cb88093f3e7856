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
from runfolder.schema import JOBS_DIR, LOADGEN_DIR, QUEUE_DIR, SAMPLES_DIR, SUMMARY_FILE

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
        loadgen_cpu_max_percent=float(th.get("loadgen_cpu_max_percent", defaults.loadgen_cpu_max_percent)),
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


def window_of(run_dir: Path, mode: str) -> tuple[float, float] | None:
    """The measured window of mode in an analysed run folder."""
    summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    return _window(summary, mode) if (summary.get("modes") or {}).get(mode) else None


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


def _queue(run_dir: Path, mode: str) -> pd.DataFrame | None:
    path = run_dir / QUEUE_DIR / f"{mode}.csv"
    if not path.exists():
        return None
    df = pd.read_csv(path)
    return df if not df.empty and {"ts", "ready", "deferred", "in_progress"} <= set(df.columns) else None


def outstanding_slope(run_dir: Path, mode: str, w0: float, w1: float) -> float | None:
    """Growth per second of the jobs accepted and not finished (queued, deferred or in progress) in [w0, w1].

    The summary's backlog counts queued jobs only; a worker that claims many jobs at once keeps that near 0
    for a while as its in-progress work piles up, which a short step would take for keeping up.
    """
    q = _queue(run_dir, mode)
    if q is None:
        return None
    q = q[(q["ts"] >= w0) & (q["ts"] <= w1)]
    busy = (q["ready"] + q["deferred"] + q["in_progress"]).to_numpy(dtype=float)
    return _slope(q["ts"].to_numpy(dtype=float), busy)


def job_rate(run_dir: Path, mode: str) -> float | None:
    """Jobs finished per second while the workers had jobs waiting (saturated), from the job records.

    Measured from the first completion to the last queue sample with jobs waiting: the pipeline is full
    there, so this is what the workers can do, not what was offered.
    """
    q = _queue(run_dir, mode)
    path = run_dir / JOBS_DIR / f"{mode}.jsonl"
    if q is None or not path.exists():
        return None
    waiting = q["ts"][(q["ready"] + q["deferred"]) > 0].to_numpy(dtype=float)
    done = []
    with path.open() as fh:
        for line in fh:
            if line.strip() and (ts := json.loads(line).get("done_ts")) is not None:
                done.append(float(ts))
    if waiting.size < 2 or not done:
        return None
    t0, t1 = max(float(waiting[0]), min(done)), float(waiting[-1])
    n = sum(t0 < t <= t1 for t in done)
    return n / (t1 - t0) if t1 > t0 else None


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
    slope = achieved = backlog = None
    if window is not None:
        slope, achieved = inflight(run_dir, mode, *window)
        backlog = outstanding_slope(run_dir, mode, *window) if jobs else None
    step = Step(
        rate=rate,
        arrival_rate=m.get("rps"),
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
        backlog_slope_per_s=backlog if backlog is not None else jobs.get("backlog_slope_per_s"),
        jobs_accepted=jobs.get("accepted"),
        jobs_lost=jobs.get("lost"),
        job_rate=job_rate(run_dir, mode) if jobs else None,
        run_dir=str(run_dir),
    )
    return step, limits_from(summary)

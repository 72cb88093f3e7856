"""One step's numbers from its run folder: summary.json (the ordinary analysis) plus what a search needs on top.

On top of the summary: whether the generator sent the scheduled arrivals on time (loadgen/), the growth of
requests in flight through the measured window (samples/: a server falling behind, seen before its latency
crosses a threshold in a short step), the responses and jobs completed per second in that window, and whether
the workers kept up (backlog.py, from the job records' accept and finish times).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from analysis.config import PERCENTILES
from analysis.stats import percentile_values
from bench.capacity.backlog import Backlog, judge_backlog
from bench.capacity.model import Step
from bench.capacity.plan import Pooled
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
    """Growth per second of the jobs accepted and not finished (queued, deferred or in progress) in [w0, w1]
    from the queue depth samples: the fallback when the job records carry no accept/finish times."""
    q = _queue(run_dir, mode)
    if q is None:
        return None
    q = q[(q["ts"] >= w0) & (q["ts"] <= w1)]
    busy = (q["ready"] + q["deferred"] + q["in_progress"]).to_numpy(dtype=float)
    return _slope(q["ts"].to_numpy(dtype=float), busy)


def job_times(run_dir: Path, mode: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(accepted, finished) epoch seconds of every job of mode (finished: done or parked in the DLQ, inf when
    neither); None when there are no records or some lack an accept time."""
    times = _job_times(run_dir, mode)
    return None if times is None else times[:2]


def _job_times(run_dir: Path, mode: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """job_times plus the done times alone (inf for a job not done): what goodput counts."""
    path = run_dir / JOBS_DIR / f"{mode}.jsonl"
    if not path.exists():
        return None
    enq: list[float] = []
    fin: list[float] = []
    done: list[float] = []
    with path.open() as fh:
        for line in fh:
            if not line.strip():
                continue
            rec = json.loads(line)
            if rec.get("enqueued_ts") is None:
                return None
            enq.append(float(rec["enqueued_ts"]))
            end = rec.get("done_ts") if rec.get("done_ts") is not None else rec.get("dead_ts")
            fin.append(float(end) if end is not None else math.inf)
            done.append(float(rec["done_ts"]) if rec.get("done_ts") is not None else math.inf)
    return (np.array(enq), np.array(fin), np.array(done)) if enq else None


def backlog_of(run_dir: Path, mode: str, start: float, w0: float, w1: float, floor_per_s: float) -> Backlog:
    """The backlog judgement of a step: from the job records, else the queue depth (slope against the floor)."""
    times = _job_times(run_dir, mode)
    if times is not None:
        # the completion rate counts done jobs only: the workers' goodput, not their retries or the DLQ
        enq, fin, done = times
        return judge_backlog(enq, fin, start, w0, w1, floor_per_s, completed=done)
    slope = outstanding_slope(run_dir, mode, w0, w1)
    growing = None if slope is None else slope > floor_per_s
    return Backlog(
        growing, slope, floor_per_s, None, (w0, w1), None, "" if growing is not None else "no queue samples"
    )


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


def abandoned(run_dir: Path, mode: str) -> int:
    """Requests the generator sent and never saw answered (killed at its stop timeout): sent - samples."""
    sent = 0
    for path in (run_dir / LOADGEN_DIR).glob(f"{mode}-*.json"):
        sent += int(json.loads(path.read_text()).get("sent") or 0)
    rows = sum(
        len(pd.read_csv(p, usecols=["intended_ts"])) for p in (run_dir / SAMPLES_DIR).glob(f"{mode}-*.csv")
    )
    return max(0, sent - rows)


def read_step(run_dir: Path, mode: str, rate: float, percentile: str) -> tuple[Step, Limits]:
    """The measured (not yet judged) step of mode at rate from an analysed run folder."""
    summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    m = (summary.get("modes") or {}).get(mode) or {}
    lat = m.get("latency_ms") or {}
    raw = m.get("latency_uncorrected_ms") or {}
    jobs = m.get("jobs") or {}
    on_time, cpu = generator(run_dir, mode)
    window = _window(summary, mode) if m else None
    slope = achieved = None
    lim = limits_from(summary)
    backlog = Backlog(None, None, 0.0, None, None, None, "no queue samples")
    if window is not None:
        slope, achieved = inflight(run_dir, mode, *window)
        if jobs:
            start = float(summary["run"]["modes"][mode]["start_ts"])
            floor = lim.slope_limit(float(m.get("rps") or rate))
            backlog = backlog_of(run_dir, mode, start, *window, floor)
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
        backlog_slope_per_s=backlog.slope_per_s,
        backlog_limit_per_s=backlog.limit_per_s if backlog.slope_per_s is not None else None,
        backlog_growing=backlog.growing,
        backlog_note=backlog.why,
        job_time_s=backlog.normal_s,
        jobs_accepted=jobs.get("accepted"),
        jobs_lost=jobs.get("lost"),
        job_rate=backlog.completion_rate,
        run_dir=str(run_dir),
    )
    return step, lim


def loop_lag_text(run_dir: Path, mode: str) -> str:
    """The workers' loop lag in a step (their "loop lag" log lines, via summary.json), for the console."""
    try:
        summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return ""
    parts = []
    for w in ((summary.get("modes") or {}).get(mode) or {}).get("workers") or []:
        p99, bound = w.get("p99_ms"), w.get("bound_ms")
        worst = p99 if p99 is not None else w.get("max_ms")
        cpu = ", CPU-bound" if worst is not None and bound is not None and worst >= bound else ""
        parts.append(f"{w.get('worker')} loop lag p99 {worst:g} ms (bound {bound:g} ms{cpu})")
    return "; ".join(parts)


def _measured_latencies(run_dir: Path, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(corrected, from the actual send) latency in ms of mode's samples in its measured window."""
    summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    window = _window(summary, mode) if (summary.get("modes") or {}).get(mode) else None
    cols = ["intended_ts", "latency_ms", "latency_corrected_ms"]
    frames = [pd.read_csv(p, usecols=cols) for p in sorted((run_dir / SAMPLES_DIR).glob(f"{mode}-*.csv"))]
    frames = [f for f in frames if not f.empty]
    if window is None or not frames:
        return np.zeros(0), np.zeros(0)
    df = pd.concat(frames, ignore_index=True)
    df = df[df["intended_ts"] >= window[0]]
    corrected = df["latency_corrected_ms"].fillna(df["latency_ms"]).to_numpy(dtype=float)
    return corrected, df["latency_ms"].to_numpy(dtype=float)


def pooled(run_dirs: list[Path], mode: str, percentile: str) -> Pooled:
    """Percentiles of the measured samples of several runs of one step, pooled (never averaged)."""
    parts = [_measured_latencies(d, mode) for d in run_dirs]
    corrected = np.concatenate([c for c, _ in parts]) if parts else np.zeros(0)
    actual = np.concatenate([a for _, a in parts]) if parts else np.zeros(0)
    if corrected.size == 0:
        return Pooled(None, None, None, None, None)
    keys = [percentile, "p50", "p95", "p99"]
    values = [float(v) for v in percentile_values(corrected, [PERCENTILES[k] for k in keys])]
    raw = float(percentile_values(actual, [PERCENTILES[percentile]])[0])
    return Pooled(values[0], raw, values[1], values[2], values[3])

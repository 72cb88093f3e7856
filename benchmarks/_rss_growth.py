"""What the RSS soak's samples say (benchmarks/bench_soak_rss.py runs the soak and takes them): each process's
growth after the warm-up, Redis's own accounting beside it, the plot and the CSV files.

Rows: (ts, process label, pid, RSS MB) per process and sample; Redis rows: (ts, used_memory MB, keys).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

GROWTH_GOAL_PCT = 10.0


def growth(
    rows: list[tuple[float, str, int, float]], start: float, end: float, warmup_s: float
) -> dict[str, Any]:
    """Per process: baseline (first window after warm-up) and end (last window) median RSS, growth %."""
    t0 = start + warmup_s
    win = min(60.0, max((end - t0) / 5, 1e-9))
    by_label: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for ts, label, _pid, mb in rows:
        if t0 <= ts <= end:
            by_label[label].append((ts, mb))
    out: dict[str, Any] = {}
    for label, points in sorted(by_label.items()):
        ts = np.array([p[0] for p in points])
        mb = np.array([p[1] for p in points])
        first, last = mb[ts <= t0 + win], mb[ts >= end - win]
        if first.size == 0 or last.size == 0 or ts.max() - ts.min() < (end - t0) / 2:
            continue  # a process that did not live through the load phase (e.g. one started late)
        base, final = float(np.median(first)), float(np.median(last))
        slope = float(np.polyfit((ts - t0) / 60, mb, 1)[0]) if ts.size > 2 else 0.0
        out[label] = {
            "baseline_mb": round(base, 2),
            "end_mb": round(final, 2),
            "max_mb": round(float(mb.max()), 2),
            "growth_pct": round((final / base - 1) * 100, 2),
            "max_over_baseline_pct": round((float(mb.max()) / base - 1) * 100, 2),
            "slope_mb_per_min": round(slope, 4),
            "samples": int(ts.size),
        }
    return out


def plot(rows: list[tuple[float, str, int, float]], start: float, end: float, warmup_s: float,
         result: dict[str, Any], path: Path, title: str) -> None:  # fmt: skip
    """RSS (MB) and RSS relative to the post-warm-up baseline (%) of every process over the run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 8), sharex=True)
    by_label: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for ts, label, _pid, mb in rows:
        by_label[label].append(((ts - start) / 60, mb))
    for label, points in sorted(by_label.items()):
        x, y = np.array(points).T
        top.plot(x, y, label=label, lw=1.2)
        if label in result:
            bottom.plot(x, (y / result[label]["baseline_mb"] - 1) * 100, label=label, lw=1.2)
    for ax in (top, bottom):
        ax.axvspan(0, warmup_s / 60, color="0.9", label="_warm-up")
        ax.axvline((end - start) / 60, color="0.5", ls=":", lw=1)
        ax.grid(alpha=0.3)
    bottom.axhspan(-GROWTH_GOAL_PCT, GROWTH_GOAL_PCT, color="tab:green", alpha=0.08)
    bottom.axhline(GROWTH_GOAL_PCT, color="tab:red", ls="--", lw=1, label=f"+{GROWTH_GOAL_PCT:g} % goal")
    top.set_ylabel("RSS (MB)")
    bottom.set_ylabel("RSS vs. baseline after warm-up (%)")
    bottom.set_xlabel("minutes since the load started (grey: warm-up; dotted: end of the load)")
    top.legend(fontsize=8, ncol=4, loc="upper left")
    bottom.legend(fontsize=8, ncol=4, loc="upper left")
    top.set_title(title, fontsize=10)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def redis_window(rows: list[tuple[float, float, int]], t0: float, end: float) -> dict[str, Any]:
    """Redis's own accounting at the start and end of the measured window: data vs. process memory."""
    inside = [r for r in rows if t0 <= r[0] <= end]
    if not inside:
        return {}
    return {"used_memory_mb": [round(inside[0][1], 2), round(inside[-1][1], 2)],
            "keys": [inside[0][2], inside[-1][2]]}  # fmt: skip


def write_csvs(
    out: Path,
    rows: list[tuple[float, str, int, float]],
    redis_rows: list[tuple[float, float, int]],
    start: float,
) -> None:
    """rss.csv (ts, t_s since the load started, process, pid, rss_mb) and redis.csv into out."""
    with (out / "rss.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["ts", "t_s", "process", "pid", "rss_mb"])
        writer.writerows(
            (f"{ts:.3f}", f"{ts - start:.1f}", label, pid, f"{mb:.2f}") for ts, label, pid, mb in rows
        )
    with (out / "redis.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["ts", "t_s", "used_memory_mb", "keys"])
        writer.writerows((f"{ts:.3f}", f"{ts - start:.1f}", f"{mb:.2f}", keys) for ts, mb, keys in redis_rows)

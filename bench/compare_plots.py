"""Percentile curves of two runs overlaid, one figure per mode (matplotlib Agg). Computation apart from drawing.

Curves come from the runs' raw samples (analysis.load.load_run + analysis.stats.mode_samples: the same warm-up cut
and headline latency as summary.json); a run without samples falls back to its summary's percentile points.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis.load import RunDataError, load_run
from analysis.stats import mode_samples, percentile_values
from bench.gate_inputs import Summary

# Percentiles on a "nines" axis: x = -log10(1 - p/100), so p90, p99, p99.9 sit evenly apart.
CURVE_PERCENTS = [
    float(p)
    for p in np.concatenate(
        [np.arange(0, 90, 5), np.arange(90, 99, 1), np.arange(99, 99.9, 0.1), [99.9, 99.95, 99.99]]
    )
]
_SUMMARY_POINTS = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}


@dataclass
class Curve:
    """One run's latency percentile curve for one mode."""

    label: str
    percents: list[float]
    latency_ms: list[float]
    source: str  # "samples" or "summary"


def nines(percent: float) -> float:
    """x position of a percentile on the nines axis (p99.99 and above pinned to 4)."""
    return float(-np.log10(max(1 - percent / 100, 1e-4)))


def curves(summary: Summary, label: str) -> dict[str, Curve]:
    """Per mode: the percentile curve from raw samples when the run folder has them, else the summary points."""
    out: dict[str, Curve] = {}
    run_dir = summary.path.parent
    try:
        data = load_run(run_dir)
    except RunDataError:
        data = None
    warmup_s = float(summary.data.get("warmup_s") or 0.0)
    for mode, stats in summary.data.get("modes", {}).items():
        if data is not None:
            frame = data.samples[data.samples["mode"] == mode]
            if len(frame):
                ms = mode_samples(frame, mode, data.run, warmup_s)
                if ms.latency_ms.size:
                    values = percentile_values(ms.latency_ms, CURVE_PERCENTS)
                    out[mode] = Curve(label, CURVE_PERCENTS, [float(v) for v in values], "samples")
                    continue
        latency = stats.get("latency_ms") or {}
        points = [
            (p, latency[k]) for k, p in _SUMMARY_POINTS.items() if isinstance(latency.get(k), int | float)
        ]
        if points:
            out[mode] = Curve(label, [p for p, _ in points], [float(v) for _, v in points], "summary")
    return out


def plot_overlay(mode: str, a: Curve | None, b: Curve | None, path: Path) -> Path:
    """Draw both runs' curves for one mode into path (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=100)
    try:
        for curve, colour in ((a, "tab:blue"), (b, "tab:orange")):
            if curve is None:
                continue
            xs = [nines(p) for p in curve.percents]
            style = "-" if curve.source == "samples" else "o--"
            ax.plot(xs, curve.latency_ms, style, color=colour, label=f"{curve.label} ({curve.source})")
        ticks = [50.0, 90.0, 99.0, 99.9, 99.99]
        ax.set_xticks([nines(p) for p in ticks], [f"p{p:g}" for p in ticks])
        ax.set_xlabel("percentile")
        ax.set_ylabel("latency (ms)")
        ax.set_title(f"{mode}: latency percentiles")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left")
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path

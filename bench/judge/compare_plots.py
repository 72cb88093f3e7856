"""Percentile curves of two runs overlaid, one figure per mode.

Raw samples are read and cut exactly as analysis does for summary.json (analysis.load.load_run +
analysis.stats.mode_samples) and drawn with analysis.plots.plot_percentiles, so a compare plot matches the runs'
own report plots. A run folder without samples (a bare summary.json) falls back to its summary's percentile
points, drawn here on the same "nines" axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis.load import RunDataError, load_run
from analysis.plots import NINES_TICKS, plot_percentiles
from analysis.stats import mode_samples
from bench.judge.gate_inputs import Summary

_SUMMARY_POINTS = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}


@dataclass
class Curve:
    """One run's latencies for one mode: raw samples, or (fallback) the summary's percentile points."""

    label: str
    source: str  # "samples" or "summary"
    samples_ms: np.ndarray | None = None
    points: dict[float, float] | None = None  # percent -> latency ms


def nines(percent: float) -> float:
    """x position of a percentile on the nines axis: -log10(1 - p/100); p90 -> 1, p99 -> 2."""
    return float(-np.log10(max(1 - percent / 100, 1e-5)))


def curves(summary: Summary, label: str) -> dict[str, Curve]:
    """Per mode: the headline latencies from raw samples when the run folder has them, else summary points."""
    out: dict[str, Curve] = {}
    try:
        data = load_run(summary.path.parent)
    except RunDataError:
        data = None
    warmup_s = summary.model.warmup_s or 0.0
    for mode, stats in summary.model.modes.items():
        if data is not None:
            frame = data.samples[data.samples["mode"] == mode]
            if len(frame):
                ms = mode_samples(frame, mode, data.run, warmup_s)
                if ms.latency_ms.size:
                    out[mode] = Curve(label, "samples", samples_ms=ms.latency_ms)
                    continue
        latency = stats.latency_ms
        points = {
            p: float(value) for k, p in _SUMMARY_POINTS.items() if (value := getattr(latency, k)) is not None
        }
        if points:
            out[mode] = Curve(label, "summary", points=points)
    return out


def plot_overlay(
    mode: str, a: Curve | None, b: Curve | None, path: Path, fast_ms: float, slow_ms: float
) -> Path:
    """Draw both runs' curves for one mode into path (PNG)."""
    present = [c for c in (a, b) if c is not None]
    title = f"{mode}: latency by percentile"
    if all(c.samples_ms is not None for c in present):
        raw = {c.label: c.samples_ms for c in present if c.samples_ms is not None}
        return plot_percentiles(raw, path, title=title, fast_ms=fast_ms, slow_ms=slow_ms)
    return _plot_points(present, path, title)


def _plot_points(present: list[Curve], path: Path, title: str) -> Path:
    """Fallback: summary percentile points (and any raw curve) on the nines axis."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    from analysis.plots import nines_curve

    fig = Figure(figsize=(10, 5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for curve, colour in zip(present, ("#2471a3", "#d35400"), strict=False):
        if curve.samples_ms is not None:
            x, y = nines_curve(curve.samples_ms)
            ax.plot(x, y, color=colour, linewidth=2, label=f"{curve.label} (samples)")
        elif curve.points:
            xs = [nines(p) for p in curve.points]
            ax.plot(
                xs, list(curve.points.values()), "o--", color=colour, label=f"{curve.label} (summary points)"
            )
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ticks = [t for t in NINES_TICKS if t <= 3.0 + 1e-9]
    ax.set_xticks(ticks, [NINES_TICKS[t] for t in ticks])
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms, log)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="best")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path

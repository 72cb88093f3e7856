"""PNG plots with matplotlib's object API on the Agg canvas (no pyplot: no global figure state leaks)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from analysis.stats import ModeSamples

MODE_COLORS = {"noop": "#7f8c8d", "sync": "#c0392b", "offload": "#2471a3"}
EXTRA_COLORS = ("#27ae60", "#8e44ad", "#d35400", "#16a085", "#2c3e50")
NINES_TICKS = {
    0.0: "0%",
    np.log10(2): "50%",
    1.0: "90%",
    2.0: "99%",
    3.0: "99.9%",
    4.0: "99.99%",
    5.0: "99.999%",
}
DPI = 100


def _color(label: str, i: int) -> str:
    return MODE_COLORS.get(label, EXTRA_COLORS[i % len(EXTRA_COLORS)])


def _new(width_in: float = 10.0, height_in: float = 5.0) -> Figure:
    fig = Figure(figsize=(width_in, height_in), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path, rows: int = 1) -> Path:
    """Fixed margins in inches, not a layout engine: constrained layout measured every tick label of every
    axis twice and was half of a report's plotting time (~1.5 s of 3)."""
    width, height = fig.get_size_inches()
    panel_gap_in = 0.55
    fig.subplots_adjust(
        left=0.85 / width, right=1 - 0.2 / width, bottom=0.6 / height, top=1 - 0.4 / height,
        hspace=panel_gap_in * rows / max(height - 1.0 - panel_gap_in * (rows - 1), 0.5),
    )  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def nines_curve(values: np.ndarray | pd.Series, points: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """(x, latency) of the inverted-CDF percentile curve, x = -log10(1 - q): 1 is p90, 2 p99, 3 p99.9."""
    arr = np.sort(np.asarray(values, dtype=float))  # numpy's vectorised sort beats partitioning on 400 ranks
    arr = arr[~np.isnan(arr)]
    n = arr.size
    if n == 0:
        return np.zeros(0), np.zeros(0)
    x = np.linspace(0.0, min(np.log10(n), 5.0), points)  # beyond 1/n the curve has no data
    q = 1.0 - 10.0**-x
    idx = np.clip(np.ceil(n * q - 1), 0, n - 1).astype(np.int64)
    return x, arr[idx]


def _ms_axis(ax: Any) -> None:
    """Log latency axis labelled in plain milliseconds (1, 10, 100, 1,000) rather than powers of ten."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))


def _target_lines(ax: Any, fast_ms: float, slow_ms: float) -> None:
    ax.axhline(fast_ms, color="#27ae60", linestyle="--", linewidth=1, label=f"{fast_ms:g} ms (fast)")
    ax.axhline(slow_ms, color="#e67e22", linestyle="--", linewidth=1, label=f"{slow_ms:g} ms (slow)")


def plot_percentiles(
    curves: Mapping[str, np.ndarray | pd.Series],
    path: Path,
    title: str = "Latency by percentile",
    fast_ms: float = 100.0,
    slow_ms: float = 1000.0,
) -> Path:
    """Overlay percentile curves of raw latency samples (ms), one per label, on a log "nines" axis."""
    fig = _new()
    ax = fig.add_subplot()
    x_max = 0.0
    for i, (label, values) in enumerate(curves.items()):
        x, y = nines_curve(values)
        if x.size:
            ax.plot(
                x, y, color=_color(label, i), linewidth=2, label=f"{label} (n={np.asarray(values).size:,})"
            )
            x_max = max(x_max, float(x[-1]))
    _target_lines(ax, fast_ms, slow_ms)
    _ms_axis(ax)
    ticks = [t for t in NINES_TICKS if t <= max(x_max, 2.0) + 1e-9]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: NINES_TICKS.get(v, "")))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim(0, max(x_max, 2.0))
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms, log)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="best")
    return _save(fig, path)


def _thin(n: int, limit: int, seed: int = 0) -> np.ndarray:
    """Indices of at most limit evenly random points (seeded: the same run draws the same plot)."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


def _shade_faults(ax: Any, faults: Sequence[Mapping[str, Any]], ms: ModeSamples) -> None:
    """Shade each injected fault that overlaps this mode's measured window, labelled with its name."""
    for fault in faults:
        start, end = fault.get("ts"), fault.get("end_ts")
        if not isinstance(start, int | float):
            continue
        end = end if isinstance(end, int | float) else start + 1.0  # an instant fault (a kill): a 1 s band
        if end < ms.start_ts or start > ms.end_ts:
            continue
        ax.axvspan(
            start - ms.start_ts,
            end - ms.start_ts,
            color="#c0392b",
            alpha=0.12,
            label=f"fault: {fault.get('name', '?')}",
        )


def plot_latency_over_time(
    samples: Sequence[ModeSamples], windows: Mapping[str, dict[str, Any]], path: Path, max_points: int,
    fast_ms: float = 100.0, slow_ms: float = 1000.0, faults: Sequence[Mapping[str, Any]] = (),
) -> Path:  # fmt: skip
    """One panel per mode: a thinned scatter of latencies, per-window p50/p99 lines, injected faults shaded."""
    fig = _new(10.0, 2.6 * max(len(samples), 1))
    axes = fig.subplots(max(len(samples), 1), 1, squeeze=False)[:, 0]
    for i, (ax, ms) in enumerate(zip(axes, samples, strict=False)):
        color = _color(ms.mode, i)
        keep = _thin(ms.ts.size, max_points)
        ax.scatter(ms.ts[keep] - ms.start_ts, ms.latency_ms[keep], s=3, alpha=0.35, color=color, linewidths=0)
        win = windows.get(ms.mode) or {}
        if win.get("start_ts"):
            mid = np.asarray(win["start_ts"]) - ms.start_ts + win["window_s"] / 2
            ax.plot(mid, win["p50"], color="black", linewidth=1.2, label="p50 per window")
            ax.plot(mid, win["p99"], color="black", linewidth=1.2, linestyle=":", label="p99 per window")
        _target_lines(ax, fast_ms, slow_ms)
        _shade_faults(ax, faults, ms)
        _ms_axis(ax)
        ax.set_title(f"{ms.mode}: latency over time ({ms.basis})", fontsize=10)
        ax.set_ylabel("ms (log)")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right", fontsize=7)
    axes[-1].set_xlabel("seconds since the end of the warm-up")
    return _save(fig, path, rows=len(axes))


def plot_throughput(samples: Sequence[ModeSamples], path: Path, bin_s: float = 1.0) -> Path:
    """Requests per second over time, per mode (time from each mode's measured start: modes run in turn)."""
    fig = _new(10.0, 4.0)
    ax = fig.add_subplot()
    for i, ms in enumerate(samples):
        if ms.ts.size == 0:
            continue
        bins = np.floor((ms.ts - ms.start_ts) / bin_s).astype(np.int64)
        counts = np.bincount(bins - bins.min())
        ax.plot(
            (np.arange(counts.size) + bins.min()) * bin_s,
            counts / bin_s,
            color=_color(ms.mode, i),
            label=ms.mode,
        )
    ax.set_xlabel("seconds since the end of the warm-up")
    ax.set_ylabel("requests/s")
    ax.set_title("Throughput")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    return _save(fig, path)


def plot_queue(queue: pd.DataFrame, load_end_ts: float | None, path: Path) -> Path:
    """Queue depth (ready, deferred, in progress, DLQ) over time, with the end of the load marked."""
    fig = _new(10.0, 4.0)
    ax = fig.add_subplot()
    t0 = float(queue["ts"].iloc[0])
    t = queue["ts"].to_numpy() - t0
    for col, color in (
        ("ready", "#2471a3"),
        ("deferred", "#f39c12"),
        ("in_progress", "#27ae60"),
        ("dlq", "#c0392b"),
    ):
        ax.plot(t, queue[col].to_numpy(), label=col, color=color)
    if load_end_ts is not None:
        ax.axvline(load_end_ts - t0, color="black", linestyle="--", linewidth=1, label="end of load")
    ax.set_xlabel("seconds since the first queue sample")
    ax.set_ylabel("jobs")
    ax.set_title("Queue depth")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_e2e(e2e_ms: np.ndarray, percentiles: Mapping[str, float | None], path: Path) -> Path:
    """Histogram of offload end-to-end times (enqueue to done, log bins) with p50/p95/p99 marked."""
    fig = _new(10.0, 4.0)
    ax = fig.add_subplot()
    values = e2e_ms[e2e_ms > 0]
    if values.size:
        bins: Any = (
            np.geomspace(values.min(), values.max() * 1.001, 60) if values.max() > values.min() else 10
        )
        ax.hist(values, bins=bins, color=MODE_COLORS["offload"], alpha=0.8)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:,.4g}" if f"{v:.0e}"[0] in "25" else ""))
    for (key, value), style in zip(percentiles.items(), ("-", "--", ":"), strict=False):
        if value is not None:
            ax.axvline(value, color="black", linestyle=style, linewidth=1, label=f"{key} {value:,.0f} ms")
    ax.set_xlabel("enqueue to done (ms, log)")
    ax.set_ylabel("jobs")
    ax.set_title(f"Offload end-to-end (n={values.size:,})")
    ax.grid(True, alpha=0.3)
    if any(v is not None for v in percentiles.values()):
        ax.legend()
    return _save(fig, path)

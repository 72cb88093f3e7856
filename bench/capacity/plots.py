"""The capacity plots (matplotlib Agg, files only): latency vs offered rate, achieved vs offered, job backlog
vs rate, and the USL curve with the measured points."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from bench.capacity.model import CapacityResult  # noqa: E402
from bench.capacity.search import placed  # noqa: E402
from bench.capacity.usl import usl_rate  # noqa: E402

_STYLES = {"p50": ":", "p95": "-", "p99": "--"}


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _colors(modes: list[str]) -> dict[str, str]:
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {m: palette[i % len(palette)] for i, m in enumerate(modes)}


def plot_latency(res: CapacityResult, path: Path, fast_ms: float, slow_ms: float) -> Path:
    """p50/p95/p99 against offered rate per mode, the two target lines, each mode's knees marked."""
    fig, ax = plt.subplots(figsize=(9, 5))
    colors = _colors(list(res.modes))
    for mode, m in res.modes.items():
        steps = sorted(m.steps, key=placed)
        rates = [placed(s) for s in steps]
        for key, style in _STYLES.items():
            values = [getattr(s, key) if getattr(s, key) is not None else np.nan for s in steps]
            ax.plot(rates, values, style, marker="o", ms=3, color=colors[mode], label=f"{mode} {key}")
        limited = [s for s in steps if s.generator_limited]
        if limited:
            ax.scatter([placed(s) for s in limited], [s.p95 or np.nan for s in limited], marker="x", s=60,
                       color=colors[mode], label=f"{mode}: generator-limited")  # fmt: skip
        for target, rate in (("fast", m.max_rate.fast), ("ok", m.max_rate.ok)):
            if rate is not None:
                ax.axvline(rate, color=colors[mode], alpha=0.35, lw=1)
                ax.annotate(f"{mode} {target}\n{rate:,.0f}/s", (rate, fast_ms if target == "fast" else slow_ms),
                            fontsize=7, color=colors[mode], xytext=(3, 3), textcoords="offset points")  # fmt: skip
    ax.axhline(fast_ms, color="green", lw=1, label=f"fast ({fast_ms:g} ms)")
    ax.axhline(slow_ms, color="red", lw=1, label=f"ok ({slow_ms:g} ms)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arrival rate the server got (req/s, log; generator-limited: asked)")
    ax.set_ylabel("latency (ms, log; corrected for coordinated omission)")
    ax.set_title("API latency against offered rate; vertical lines: the highest sustainable rate per target")
    ax.legend(fontsize=7, ncol=3)
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, path)


def plot_throughput(res: CapacityResult, path: Path) -> Path:
    """Achieved (responses/s) against offered rate per mode, with the ideal y = x."""
    fig, ax = plt.subplots(figsize=(7, 5))
    colors = _colors(list(res.modes))
    top = 1.0
    for mode, m in res.modes.items():
        steps = sorted(m.steps, key=placed)
        x = [placed(s) for s in steps]
        y = [s.achieved_rate if s.achieved_rate is not None else np.nan for s in steps]
        top = max([top, *x])
        ax.plot(x, y, marker="o", color=colors[mode], label=mode)
    ax.plot([0, top], [0, top], color="grey", lw=1, ls="--", label="achieved = offered")
    ax.set_xlabel("offered rate (req/s)")
    ax.set_ylabel("achieved rate (responses/s in the measured window)")
    ax.set_title("Achieved against offered throughput")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    return _save(fig, path)


def plot_backlog(res: CapacityResult, path: Path) -> Path | None:
    """Job backlog growth (jobs/s) against offered rate for offload-like modes; None when there are none."""
    modes = {m: r for m, r in res.modes.items() if r.jobs is not None}
    if not modes:
        return None
    fig, ax = plt.subplots(figsize=(7, 5))
    colors = _colors(list(res.modes))
    for mode, m in modes.items():
        steps = sorted((s for s in m.steps if s.backlog_slope_per_s is not None), key=placed)
        ax.plot([placed(s) for s in steps], [s.backlog_slope_per_s or 0.0 for s in steps], marker="o", color=colors[mode],
                label=f"{mode}: growth of overdue jobs")  # fmt: skip
        limits = [(placed(s), s.backlog_limit_per_s) for s in steps if s.backlog_limit_per_s is not None]
        if limits:
            ax.plot(*zip(*limits, strict=True), ls=":", color=colors[mode], alpha=0.7,
                    label=f"{mode}: growth that counts (steady wander)")  # fmt: skip
        if m.jobs and m.jobs.max_rate is not None:
            ax.axvline(m.jobs.max_rate, color=colors[mode], alpha=0.4, ls="--",
                       label=f"{mode}: jobs keep up to {m.jobs.max_rate:,.0f}/s")  # fmt: skip
    ax.axhline(0, color="grey", lw=1)
    lowest = min((s.backlog_slope_per_s or 0.0 for m in modes.values() for s in m.steps), default=0.0)
    ax.set_ylim(bottom=min(lowest * 1.5, -0.5))  # symlog: no decade of negative growth nothing reached
    ax.set_xscale("log")
    ax.set_xlabel("arrival rate the server got (req/s, log; generator-limited: asked)")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_ylabel("growth of jobs overdue after the start-up (jobs/s, symlog)")
    ax.set_title("Job backlog against offered rate (bounded = the workers keep up)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, path)


def plot_usl(res: CapacityResult, path: Path) -> Path | None:
    """Measured job rate per worker count, the fitted USL curve and linear scaling; None without points."""
    points = [(int(n), w.max_job_rate) for n, w in res.workers.items() if w.max_job_rate]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(7, 5))
    n_max = max(n for n, _ in points)
    u = res.usl
    if u is not None and u.lambda_ is not None and u.sigma is not None and u.kappa is not None:
        span = max(n_max * 2, int(np.ceil(u.peak_workers or 0)) + 1, 4)
        n = np.linspace(1, span, 200)
        ax.plot(n, usl_rate(n, u.lambda_, u.sigma, u.kappa), color="C0",
                label=f"USL fit: sigma={u.sigma:.3f}, kappa={u.kappa:.4f}")  # fmt: skip
        ax.plot(n, u.lambda_ * n, color="grey", ls="--", lw=1, label="linear scaling")
    ax.scatter(*zip(*points, strict=True), color="C1", zorder=3, label="measured (saturating load)")
    cores = res.meta.get("cpu_count")
    if isinstance(cores, int):
        ax.axvline(
            cores, color="red", alpha=0.4, ls=":", label=f"{cores} cores (shared with API, Redis, load)"
        )
        right = ax.get_xlim()[1]
        if right > cores:  # the curve there is the fit's, not what this machine can do
            ax.axvspan(cores, right, color="red", alpha=0.06, label="more workers than cores: extrapolated")
            ax.set_xlim(right=right)
    ax.set_xlabel("workers")
    ax.set_ylabel("jobs completed per second")
    ax.set_title("Workers' job capacity: Universal Scalability Law")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    return _save(fig, path)


def write_plots(res: CapacityResult, plots_dir: Path, fast_ms: float, slow_ms: float) -> dict[str, Path]:
    """Every plot the result has data for: name -> path."""
    out: dict[str, Path] = {}
    if any(m.steps for m in res.modes.values()):
        out["latency"] = plot_latency(res, plots_dir / "latency_vs_rate.png", fast_ms, slow_ms)
        out["throughput"] = plot_throughput(res, plots_dir / "achieved_vs_offered.png")
    for name, maybe in (("backlog", plot_backlog(res, plots_dir / "backlog_vs_rate.png")),
                        ("usl", plot_usl(res, plots_dir / "usl.png"))):  # fmt: skip
        if maybe is not None:
            out[name] = maybe
    return out

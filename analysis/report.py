"""Build a run's report: summary.json, report.md, report.html and plots/*.png, from the run folder alone."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import instrument, plots, reliability, render, stats, validity, workerlog
from analysis import jobs as jobs_mod
from analysis.comparison import compare_modes
from analysis.config import PERCENTILES, Thresholds, load_thresholds
from analysis.load import RunData, RunDataError, load_run
from runfolder import schema

Progress = Callable[[str], None]
PLOTS_DIR = "plots"


def _empty_mode(percentile: str) -> dict[str, Any]:
    """A mode with nothing to measure: keys present (other tools rely on them), values None, marked partial."""
    return {
        "partial": True, "requests": 0, "failures": 0, "failures_by_kind": {}, "error_rate": None, "rps": None,
        "duration_s": 0.0, "latency_ms": dict.fromkeys(stats.LATENCY_KEYS), "latency_uncorrected_ms": None,
        "latency_basis": None, "send_lateness_ms": None, "enough_samples": dict.fromkeys(PERCENTILES, False),
        "target": {"percentile": percentile, "verdict": None, "verdicts": dict.fromkeys(PERCENTILES), "apdex": None,
                   "fast_ms": None, "slow_ms": None},
        "windows": {"window_s": None, "start_ts": [], "requests": [], "p50": [], "p95": [], "p99": []},
    }  # fmt: skip


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become null (json.dumps would write NaN, which is not JSON), numpy scalars plain."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class Analysis:
    """The numbers of one run plus the arrays the plots need."""

    def __init__(self, data: RunData, warmup_s: float, percentile: str, th: Thresholds) -> None:
        self.data, self.th = data, th
        self.samples: list[stats.ModeSamples] = []
        self.e2e_ms = np.zeros(0)
        self.job_mode = "offload"  # the mode whose jobs are reconciled (a target may name it otherwise)
        modes: dict[str, dict[str, Any]] = {}
        by_mode = data.by_mode()
        for mode in data.modes:
            modes[mode] = self._mode(mode, by_mode.get(mode), warmup_s, percentile)
            modes[mode]["load_generator"] = instrument.load_generator(data.loadgen.get(mode, []))
        self.summary: dict[str, Any] = {
            "schema_version": schema.SUMMARY_SCHEMA_VERSION,
            "run": data.run,
            "warmup_s": warmup_s,
            "thresholds": dataclasses.asdict(th),
            "percentile_method": f"numpy {stats.METHOD} (an observed value: smallest x with >= q of samples <= x)",
            "modes": modes,
            "comparison": compare_modes(modes),
            # a fault is judged against the mode it hit: its detail.mode (api faults), else the job mode
            "reliability": reliability.fault_effects(
                data.faults,
                by_mode.get(self.job_mode),
                data.queue.get(self.job_mode),
                data.attempts.get(self.job_mode),
                self.job_mode,
                {m: (by_mode.get(m), data.queue.get(m), data.attempts.get(m)) for m in data.modes},
            ),
            "validity": validity.check(data, modes, percentile, th),
        }

    def _mode(self, mode: str, df: pd.DataFrame | None, warmup_s: float, percentile: str) -> dict[str, Any]:
        data = self.data
        if df is None or df.empty:
            return _empty_mode(percentile)
        ms = stats.mode_samples(df, mode, data.run, warmup_s)
        if ms.ts.size == 0:
            data.notes.append(f"mode {mode}: no samples after the {warmup_s:g} s warm-up (partial run)")
            data.partial_modes.add(mode)
            return _empty_mode(percentile)
        summary = stats.mode_stats(ms, self.th, percentile)
        summary["partial"] = False
        summary["samples_total"] = ms.total_requests
        if mode == "offload" or mode in data.jobs:
            table = data.jobs.get(mode)
            if table is None:
                data.notes.append(f"mode {mode}: no jobs/{mode}.jsonl: every accepted job counts as lost")
            matched = jobs_mod.match(df, table)
            summary["jobs"] = jobs_mod.reconcile(matched, table, ms.start_ts)
            summary["jobs"].update(jobs_mod.queue_stats(data.queue.get(mode), ms.start_ts, ms.end_ts))
            # the workers' own view (their logs in the run folder): from the warm-up's end through the drain
            queue = data.queue.get(mode)
            end_ts = (
                max(ms.end_ts, float(queue["ts"].max()))
                if queue is not None and not queue.empty
                else ms.end_ts
            )
            summary["jobs"]["self_inflicted"] = workerlog.self_inflicted(data.run_dir, ms.start_ts, end_ts)
            summary["workers"] = workerlog.worker_lag(data.run_dir, ms.start_ts, end_ts)
            self.e2e_ms = jobs_mod.e2e_ms(matched, table, ms.start_ts)
            self.job_mode = mode
        self.samples.append(ms)
        return summary


def write_plots(an: Analysis, plots_dir: Path) -> dict[str, Path]:
    """Draw every plot the run has data for; returns name -> path."""
    th = an.th
    out: dict[str, Path] = {}
    modes = an.summary["modes"]
    if not an.samples:  # every mode partial: nothing to draw
        return out
    out["percentiles"] = plots.plot_percentiles(
        {ms.mode: ms.latency_ms for ms in an.samples}, plots_dir / "latency_percentiles.png",
        title="API latency by percentile (all modes)", fast_ms=th.fast_ms, slow_ms=th.slow_ms,
    )  # fmt: skip
    out["latency_over_time"] = plots.plot_latency_over_time(
        an.samples, {m: s["windows"] for m, s in modes.items()}, plots_dir / "latency_over_time.png",
        th.max_points_per_mode, th.fast_ms, th.slow_ms, an.data.faults,
    )  # fmt: skip
    out["throughput"] = plots.plot_throughput(an.samples, plots_dir / "throughput.png")
    offload = next((ms for ms in an.samples if ms.mode == an.job_mode), None)
    queue = an.data.queue.get(an.job_mode)
    if queue is not None and not queue.empty:
        out["queue"] = plots.plot_queue(
            queue, offload.end_ts if offload else None, plots_dir / "queue_depth.png"
        )
    if an.e2e_ms.size:
        e2e = modes[an.job_mode]["jobs"]["e2e_ms"]
        out["e2e"] = plots.plot_e2e(an.e2e_ms, e2e, plots_dir / "offload_e2e.png")
    return out


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_summary(run_dir: Path, thresholds: Thresholds | None = None) -> dict[str, Any]:
    """Analyse run_dir and write summary.json only (no plots, no report): the numbers a capacity search
    judges a step by between steps; build_report writes the same summary and the report later."""
    th = thresholds or load_thresholds()
    data = load_run(Path(run_dir))
    warmup_s = float((data.run.get("load") or {}).get("warmup_s") or 0.0)
    summary: dict[str, Any] = _clean(Analysis(data, warmup_s, th.percentile, th).summary)
    _write_atomic(Path(run_dir) / schema.SUMMARY_FILE, json.dumps(summary, indent=2, allow_nan=False) + "\n")
    return summary


def build_report(
    run_dir: Path,
    warmup_s: float | None = None,
    percentile: str | None = None,
    out_dir: Path | None = None,
    thresholds: Thresholds | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Analyse run_dir and write summary.json, report.md, report.html, plots/ (into out_dir or run_dir)."""
    step = progress or (lambda _msg: None)
    th = thresholds or load_thresholds()
    percentile = percentile or th.percentile
    if percentile not in PERCENTILES:
        raise RunDataError(f"unknown percentile {percentile!r} (hint: one of {', '.join(PERCENTILES)})")
    step("reading the run folder")
    data = load_run(Path(run_dir))
    if warmup_s is None:
        warmup_s = float((data.run.get("load") or {}).get("warmup_s") or 0.0)
    if warmup_s < 0:
        raise RunDataError(f"warm-up must be >= 0 s, got {warmup_s:g}")
    step("computing statistics")
    an = Analysis(data, warmup_s, percentile, th)
    summary: dict[str, Any] = _clean(an.summary)
    out = Path(out_dir) if out_dir is not None else Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    step("drawing plots")
    plot_paths = write_plots(an, out / PLOTS_DIR)
    step("writing summary.json, report.md, report.html")
    _write_atomic(out / schema.SUMMARY_FILE, json.dumps(summary, indent=2, allow_nan=False) + "\n")
    _write_atomic(
        out / "report.md",
        render.markdown(summary, {k: f"{PLOTS_DIR}/{p.name}" for k, p in plot_paths.items()}),
    )
    _write_atomic(out / "report.html", render.html(summary, plot_paths))
    return summary

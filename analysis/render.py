"""Render a summary as Markdown (GitHub step summary) and as self-contained HTML (inline CSS and images)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from analysis.config import PERCENTILES
from analysis.jobs import __doc__ as JOBS_DEFINITIONS
from analysis.render_rows import (
    FAULT_HEADER,
    INSTRUMENT_HEADER,
    INSTRUMENT_NOTE,
    JOB_COUNTS,
    PLOT_TITLES,
    RELIABILITY_NOTE,
    fault_rows,
    headline_rows,
    instrument_rows,
    ms,
    num,
    pct,
    ratio,
    worker_lines,
)

__all__ = ["html", "markdown", "ms", "num", "pct", "ratio"]


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---:" if i else "---" for i in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def markdown(summary: Mapping[str, Any], plot_links: Mapping[str, str]) -> str:
    """report.md: headline table first, then validity, comparison, jobs and per-mode details."""
    pctl = next((m["target"]["percentile"] for m in summary["modes"].values()), "p95")
    run = summary["run"]
    out = [f"## offload-bench report — run `{run.get('run_id', '?')}`", ""]
    head = [
        "mode",
        "requests",
        "req/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        f"verdict ({pctl})",
        "Apdex",
        "errors",
        "lost jobs",
    ]
    keys = ["mode", "requests", "rps", "p50", "p95", "p99", "verdict", "apdex", "errors", "lost"]
    out += _md_table(head, [[r[k] for k in keys] for r in headline_rows(summary)])
    out += ["", "### The instrument's own error", ""]
    out += _md_table(INSTRUMENT_HEADER, instrument_rows(summary)) + ["", INSTRUMENT_NOTE]
    val = summary["validity"]
    out += ["", "**Valid run**" if val["valid"] else "**⚠️ Do not trust these numbers:**"]
    out += [f"- {n}" for n in val["notes"]] + [f"- note: {n}" for n in val.get("info", [])]
    cmp_ = summary["comparison"]
    out += ["", "### What offloading buys", ""]
    rows = [
        [k, ms(cmp_["work_wait_ms"]["sync"][k]), ms(summary["modes"].get("offload", {}).get("latency_ms", {}).get(k)),
         ratio(cmp_["api_speedup"][k]), ms(cmp_["work_wait_ms"]["offload_e2e"][k])]
        for k in ("p50", "p95", "p99")
    ]  # fmt: skip
    out += _md_table(
        ["percentile", "sync API ms", "offload API ms", "API speed-up", "offload work done (e2e) ms"], rows
    )
    job_mode = next((m for m, v in summary["modes"].items() if v.get("jobs")), "offload")
    jobs = (summary["modes"].get(job_mode) or {}).get("jobs")
    if jobs:
        out += ["", "### Offload jobs" + ("" if job_mode == "offload" else f" ({job_mode})"), ""]
        out += _md_table(list(JOB_COUNTS), [[num(jobs.get(n)) for n in JOB_COUNTS]])
        wait = " / ".join(ms(jobs["queue_wait_ms"][k]) for k in ("p50", "p95", "p99"))
        drain = (
            "not drained" if jobs["drain_s"] is None else f"drained {jobs['drain_s']:.1f} s after the load"
        )
        out += ["", f"Queue wait p50/p95/p99: {wait} ms; queue depth max {num(jobs['queue_depth_max'])}, "
                f"backlog at end {num(jobs['backlog_end'])}, {drain}."]  # fmt: skip
        lines = worker_lines(summary["modes"][job_mode])
        if lines:
            out += ["", "Workers: " + "; ".join(lines) + "."]
    out += ["", "### Details", ""]
    head = ["mode", "basis", *PERCENTILES, "max", "mean", "enough samples for", "failures by kind"]
    rows = []
    for mode, m in summary["modes"].items():
        lat = m["latency_ms"]
        enough = ", ".join(k for k, v in m["enough_samples"].items() if v) or "none"
        kinds = ", ".join(f"{k} {v}" for k, v in m["failures_by_kind"].items()) or "–"
        rows.append(
            [
                mode,
                str(m["latency_basis"]),
                *(ms(lat[k]) for k in (*PERCENTILES, "max", "mean")),
                enough,
                kinds,
            ]
        )
        if m.get("latency_uncorrected_ms"):
            unc = m["latency_uncorrected_ms"]
            rows.append(
                [
                    f"{mode} (uncorrected)",
                    "actual",
                    *(ms(unc[k]) for k in (*PERCENTILES, "max", "mean")),
                    "",
                    "",
                ]
            )
    out += _md_table(head, rows)
    out += ["", f"Warm-up excluded: {summary['warmup_s']:g} s. Percentiles: {summary['percentile_method']}."]
    if any(m.get("latency_basis") == "corrected" for m in summary["modes"].values()):
        out += ["Open model: latencies count from each request's intended start (no coordinated omission)."]
    faults = fault_rows(summary)
    if faults:
        out += ["", "### Injected faults", ""]
        rows = [
            [
                f["name"],
                f["at"],
                f["lasted"],
                f["api"],
                f["recovery"],
                f["orphans"],
                f["detail"].replace("|", "/"),
            ]
            for f in faults
        ]
        out += _md_table(FAULT_HEADER, rows)
        rel = summary["reliability"]
        out += ["", f"API errors outside every fault window: {num(rel.get('errors_outside_faults'))}. "
                + RELIABILITY_NOTE.format(settle=rel.get("settle_s"), baseline=rel.get("baseline_s"))]  # fmt: skip
    if jobs:
        out += ["", "<details><summary>How jobs are counted</summary>", "", _definitions(), "", "</details>"]
    if plot_links:
        out += ["", "Plots: " + ", ".join(f"[{PLOT_TITLES.get(k, k)}]({v})" for k, v in plot_links.items())]
    meta = run.get("meta") or {}
    load = run.get("load") or {}
    out += ["", f"Run: commit `{str(meta.get('git_commit', '?'))[:12]}`{' (dirty)' if meta.get('git_dirty') else ''}, "
            f"host {meta.get('host', '?')}, {meta.get('cpu_count', '?')} CPUs, {load.get('model', '?')} model, "
            f"status {run.get('status', '?')}."]  # fmt: skip
    return "\n".join(out) + "\n"


def _definitions() -> str:
    """The reconciliation definitions from analysis/jobs.py's docstring (one source for code and report)."""
    return (JOBS_DEFINITIONS or "").split("\n\n", 1)[-1].strip()


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def html(summary: Mapping[str, Any], plot_paths: Mapping[str, Path]) -> str:
    """report.html: one self-contained page (inline CSS, base64 PNGs), opens offline."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("analysis", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(ms=ms, num=num, pct=pct, ratio=ratio)
    plots = [(PLOT_TITLES.get(k, k), _data_uri(p)) for k, p in plot_paths.items()]
    target: dict[str, Any] = summary["thresholds"]
    return env.get_template("report.html.j2").render(
        s=summary, rows=headline_rows(summary), plots=plots, instrument_header=INSTRUMENT_HEADER,
        instrument=instrument_rows(summary), instrument_note=INSTRUMENT_NOTE, percentiles=list(PERCENTILES), target=target,
        corrected=any(m.get("latency_basis") == "corrected" for m in summary["modes"].values()),
        pctl=next((m["target"]["percentile"] for m in summary["modes"].values()), "p95"),
        definitions=_definitions(), job_counts=JOB_COUNTS, worker_lines=worker_lines,
        faults=fault_rows(summary),
        reliability_note=RELIABILITY_NOTE.format(
            settle=summary["reliability"].get("settle_s"), baseline=summary["reliability"].get("baseline_s")
        ),
    )  # fmt: skip

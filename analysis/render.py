"""Render a summary as Markdown (GitHub step summary) and as self-contained HTML (inline CSS and images)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from analysis.config import PERCENTILES
from analysis.jobs import __doc__ as JOBS_DEFINITIONS

VERDICT_MARK = {"fast": "🟢 fast", "ok": "🟡 ok", "slow": "🔴 slow", None: "–"}
PLOT_TITLES = {
    "percentiles": "API latency by percentile",
    "latency_over_time": "Latency over time",
    "throughput": "Throughput",
    "queue": "Queue depth",
    "e2e": "Offload end-to-end",
}


def ms(value: float | None) -> str:
    """A latency for people: 1,049 / 12.3 / 0.85; a dash when missing."""
    if value is None:
        return "–"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 1 else f"{value:.2f}"


def num(value: float | int | None, digits: int = 0) -> str:
    """A count or rate with thousands separators; a dash when missing."""
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def pct(value: float | None) -> str:
    """A fraction as a percentage."""
    return "–" if value is None else f"{value:.2%}"


def ratio(value: float | None) -> str:
    """A speed-up factor."""
    return "–" if value is None else f"{value:,.1f}×"


def headline_rows(summary: Mapping[str, Any]) -> list[dict[str, str]]:
    """One row per mode: what a person reads in ten seconds."""
    rows = []
    for mode, m in summary["modes"].items():
        lat, target, jobs = m["latency_ms"], m["target"], m.get("jobs") or {}
        rows.append({
            "mode": mode + (" (partial)" if m.get("partial") else ""),
            "requests": num(m["requests"]),
            "rps": num(m["rps"], 1),
            "p50": ms(lat["p50"]), "p95": ms(lat["p95"]), "p99": ms(lat["p99"]),
            "verdict": VERDICT_MARK.get(target["verdict"], str(target["verdict"])),
            "verdict_class": str(target["verdict"] or "none"),
            "apdex": "–" if target["apdex"] is None else f"{target['apdex']:.2f}",
            "errors": f"{num(m['failures'])} ({pct(m['error_rate'])})",
            "lost": num(jobs["lost"]) if jobs else "–",
        })  # fmt: skip
    return rows


INSTRUMENT_HEADER = [
    "mode", "p50 ms", "p99 ms", "send lateness p50 / p99 / max ms", "load generator CPU % mean / busiest / max",
    "late / dropped arrivals",
]  # fmt: skip
INSTRUMENT_NOTE = (
    "Send lateness is each request's actual start minus its intended start (open model); the corrected "
    "latency includes it, so it is the load generator's error in that figure. CPU is per load process, in % of "
    "one core: a process near 100 % sends late."
)


def _triple(values: Mapping[str, Any], keys: tuple[str, str, str], fmt: Any) -> str:
    return " / ".join(fmt(values.get(k)) for k in keys)


def instrument_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    """Per mode, the latency beside the instrument's own error: send lateness and load-generator CPU."""
    rows = []
    for mode, m in summary["modes"].items():
        late, gen = m.get("send_lateness_ms"), m.get("load_generator") or {}
        cpu = _triple(gen, ("cpu_percent_mean", "cpu_percent_busiest", "cpu_percent_max"), lambda v: num(v))
        arrivals = (
            "–" if gen.get("scheduled") is None else f"{num(gen.get('late'))} / {num(gen.get('dropped'))}"
        )
        rows.append([
            mode, ms(m["latency_ms"]["p50"]), ms(m["latency_ms"]["p99"]),
            _triple(late, ("p50", "p99", "max"), ms) if late else "– (closed model: no schedule)",
            cpu if gen.get("processes") else "–", arrivals,
        ])  # fmt: skip
    return rows


FAULT_HEADER = [
    "fault", "at (s into offload)", "lasted s", "API errors in window", "queue recovery s", "jobs cut by it",
    "detail",
]  # fmt: skip
RELIABILITY_NOTE = (
    "A fault's window runs from its start to its end plus {settle} s; recovery is the time until the backlog "
    "is back at or below its largest value in the {baseline} s before the fault; jobs cut by it are attempts "
    "running at that moment that never ended or were cancelled, and re-ran counts those run again after it."
)


def fault_rows(summary: Mapping[str, Any]) -> list[dict[str, str]]:
    """Injected faults for people: when into the offload phase, how long, what happened."""
    modes = summary["run"].get("modes") or {}
    t0 = (modes.get("offload") or {}).get("start_ts") or summary["run"].get("created_ts")
    rows = []
    for f in summary["reliability"]["faults"] or []:
        ts, end = f.get("ts"), f.get("end_ts")
        detail = f.get("detail")
        text = (
            ", ".join(f"{k}={v}" for k, v in detail.items())
            if isinstance(detail, dict)
            else str(detail or "")
        )
        api, jobs = f.get("api") or {}, f.get("jobs") or {}
        codes = ", ".join(f"{c}×{n}" for c, n in (api.get("error_statuses") or {}).items())
        worst = api.get("max_error_latency_ms")
        rerun = jobs.get("rerun_max_s")
        rows.append({
            "name": str(f.get("name", "?")),
            "at": f"{ts - t0:.1f}" if isinstance(ts, int | float) and isinstance(t0, int | float) else "–",
            "lasted": f"{end - ts:.1f}" if isinstance(ts, int | float) and isinstance(end, int | float) else "–",
            "api": (f"{num(api.get('errors'))} of {num(api.get('requests'))}" + (f" ({codes}; slowest "
                    f"{ms(worst)} ms)" if codes else "")) if api else "–",
            "recovery": "–" if f.get("recovery_s") is None else f"{f['recovery_s']:.1f}",
            "orphans": (f"{num(jobs.get('orphaned'))} of {num(jobs.get('in_flight'))} in flight; re-ran "
                        f"{num(jobs.get('rerun'))}" + (f" within {rerun:.1f} s" if rerun is not None else ""))
                       if jobs else "–",
            "detail": text,
        })  # fmt: skip
    return rows


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


# the job counts both reports show, in this order (the fates add up to accepted)
JOB_COUNTS = (
    "accepted",
    "completed",
    "retried",
    "dead_lettered",
    "redriven",
    "pending",
    "unknown",
    "lost",
    "duplicates",
)


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
        definitions=_definitions(), job_counts=JOB_COUNTS,
        faults=fault_rows(summary),
        reliability_note=RELIABILITY_NOTE.format(
            settle=summary["reliability"].get("settle_s"), baseline=summary["reliability"].get("baseline_s")
        ),
    )  # fmt: skip

"""What both reports show, as text: number formats for people and the rows of the headline, instrument and
fault tables (one source for report.md and report.html)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from analysis.reliability import fault_mode

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
    "fault", "at (s into its mode)", "lasted s", "API errors in window", "queue recovery s", "jobs cut by it",
    "detail",
]  # fmt: skip
RELIABILITY_NOTE = (
    "A fault's window runs from its start to its end plus {settle} s; recovery is the time until the backlog "
    "is back at or below its largest value in the {baseline} s before the fault; jobs cut by it are attempts "
    "running at that moment that never ended or were cancelled, and re-ran counts those run again after it."
)


def fault_rows(summary: Mapping[str, Any]) -> list[dict[str, str]]:
    """Injected faults for people: when into the mode it hit (named when its record names it), how long,
    what happened."""
    modes = summary["run"].get("modes") or {}
    rows = []
    for f in summary["reliability"]["faults"] or []:
        # the mode it hit: the entry's (the summary names it), else its record's detail.mode, else offload
        mode, named = f.get("mode") or fault_mode(f), fault_mode(f, "")
        t0 = (modes.get(mode) or {}).get("start_ts") or summary["run"].get("created_ts")
        ts, end = f.get("ts"), f.get("end_ts")
        at = f"{ts - t0:.1f}" if isinstance(ts, int | float) and isinstance(t0, int | float) else "–"
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
            "at": f"{at} ({named})" if named and at != "–" else at,  # api faults: one per mode with jobs
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


def worker_lines(mode: Mapping[str, Any]) -> list[str]:
    """One line per worker: its loop lag beside the job figures, and what the workers caused themselves."""
    out = []
    for w in mode.get("workers") or []:
        lag = " / ".join("–" if w.get(k) is None else f"{w[k]:g}" for k in ("p50_ms", "p99_ms", "max_ms"))
        adapt = (f"running limit {w['limit_low']}–{w['limit_high']}" if w.get("adaptive")
                 else f"fixed at {w.get('limit_high')} jobs")  # fmt: skip
        out.append(f"{w['worker']}: loop lag p50/p99/max {lag} ms (bound {w.get('bound_ms')} ms, {adapt})")
    own = (mode.get("jobs") or {}).get("self_inflicted")
    if own:
        out.append(
            f"caused by the workers' own late loop (not a fault): {own.get('retried', 0)} job(s) retried, "
            f"{own.get('abandoned', 0)} left to their claim's expiry, {own.get('finish_retries', 0)} finish(es) "
            "retried"
        )
    return out

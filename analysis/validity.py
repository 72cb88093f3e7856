"""When a run's numbers should not be trusted: each check adds a one-line note.

`notes` make a run invalid; `info` are caveats that do not (too few samples for a percentile *above* the
headline one: a short run can still judge its p95 while its p999 is noise).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from analysis.config import PERCENTILES, Thresholds
from analysis.load import RunData


def _loadgen_checks(mode: str, records: list[dict[str, Any]], th: Thresholds, notes: list[str]) -> None:
    for rec in records:
        proc = rec.get("proc", "?")
        cpu = [s[1] for s in rec.get("cpu_percent") or [] if isinstance(s, list | tuple) and len(s) == 2]
        if cpu and float(np.mean(cpu)) >= th.loadgen_cpu_max_percent:
            notes.append(
                f"{mode}: load process {proc} averaged {np.mean(cpu):.0f} % CPU (>= {th.loadgen_cpu_max_percent:.0f} %):"
                " the load generator, not the server, may be the bottleneck"
            )
    scheduled = sum(int(r.get("scheduled") or 0) for r in records)
    if scheduled <= 0:
        return
    late = sum(int(r.get("late") or 0) for r in records)
    dropped = sum(int(r.get("dropped") or 0) for r in records)
    if late / scheduled > th.late_frac_max:
        notes.append(
            f"{mode}: {late} of {scheduled} arrivals sent late ({late / scheduled:.1%}): the open model lagged"
        )
    if dropped / scheduled > th.dropped_frac_max:
        notes.append(f"{mode}: {dropped} of {scheduled} scheduled arrivals never sent (dropped)")


def check(data: RunData, modes: dict[str, dict[str, Any]], percentile: str, th: Thresholds) -> dict[str, Any]:
    """validity.{valid, notes, info} for a run whose per-mode summaries are `modes`."""
    notes = list(data.notes)
    info: list[str] = []
    status = data.run.get("status")
    if status != "complete":
        notes.append(f"run status is {status!r}, not 'complete'")
    headline_q = PERCENTILES[percentile]
    for mode, summary in modes.items():
        if summary.get("partial"):
            continue  # load already said why
        n = summary["requests"]
        short = [k for k, enough in summary["enough_samples"].items() if not enough]
        for keys, where in (([k for k in short if PERCENTILES[k] <= headline_q], notes),
                            ([k for k in short if PERCENTILES[k] > headline_q], info)):  # fmt: skip
            if keys:
                need = ", ".join(f"{k} needs {th.min_samples(k):,}" for k in keys)
                where.append(f"{mode}: {n:,} samples are too few for {', '.join(keys)} ({need})")
        rate = summary["error_rate"]
        if rate is not None and rate > th.error_rate_max:
            notes.append(f"{mode}: error rate {rate:.2%} over {th.error_rate_max:.2%}")
        _loadgen_checks(mode, data.loadgen.get(mode, []), th, notes)
        late = (summary.get("send_lateness_ms") or {}).get("p99")
        if late is not None and late > th.send_lateness_p99_max_ms:
            notes.append(
                f"{mode}: the load generator sent 1 % of requests over {late:.1f} ms after their intended start "
                f"(send lateness p99 > {th.send_lateness_p99_max_ms:g} ms): the corrected latency charges that "
                "delay to the server"
            )
        meta = (data.run.get("modes") or {}).get(mode) or {}
        locust = meta.get("locust_requests")
        total = summary.get("samples_total")
        if locust is not None and total is not None and int(locust) != total:
            notes.append(f"{mode}: Locust counted {locust} requests but the sample files hold {total}")
        for w in summary.get("workers") or []:
            p99, bound = w.get("p99_ms"), w.get("bound_ms")
            worst = p99 if p99 is not None else w.get("max_ms")
            # an adaptive worker holds its lag at the bound by running fewer jobs: reaching it is the sign
            if worst is not None and bound is not None and worst >= bound:
                notes.append(
                    f"{mode}: {w['worker']}: worker CPU-bound (loop lag p99 {worst:g} ms, bound {bound:g} ms): "
                    "its jobs' CPU, not Redis, limits the job side"
                )
        jobs = summary.get("jobs")
        if jobs:
            if jobs["lost"]:
                # a reliability finding, not a measurement problem: shown, but it does not void the numbers
                info.append(
                    f"{mode}: {jobs['lost']} accepted job(s) lost (e.g. {', '.join(jobs['lost_ids_sample'])})"
                )
            slope = jobs.get("backlog_slope_per_s")
            limit = max(th.backlog_slope_min_per_s, th.backlog_slope_frac_of_rate * (summary["rps"] or 0.0))
            if slope is not None and slope > limit:
                notes.append(
                    f"{mode}: queue backlog grew {slope:.1f} jobs/s through the load: the arrival rate is not "
                    "sustainable by the workers (end-to-end numbers keep growing with run length)"
                )
            if jobs.get("backlog_last") and jobs.get("drain_s") is None:
                info.append(f"{mode}: {jobs['backlog_last']} job(s) still queued when queue sampling stopped")
    return {"valid": not notes, "notes": notes, "info": info}

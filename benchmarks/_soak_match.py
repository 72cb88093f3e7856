"""The soak's own analysis of a finished run folder: each duplicate matched to the fault that cut its attempt,
and the API's latency and errors per fault window (benchmarks/bench_soak_faults.py prints and checks them).
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from analysis.stats import percentile_values

# an attempt is cut by a fault when it ran at the fault's start or began while it lasted (up to SLACK_S after
# its end: the first polls after Redis answers again); it cannot have begun more than a job's lifetime
# (job timeout + orphan margin) before it
SLACK_S = 1.0


def _cut_by(
    attempt: dict[str, Any], faults: list[dict[str, Any]], lifetime_s: float
) -> dict[str, Any] | None:
    """The first fault whose window the attempt overlapped, or None."""
    start, end = attempt.get("start_ts"), attempt.get("end_ts")
    if not isinstance(start, int | float):
        return None
    for fault in faults:
        f_start = float(fault["ts"])
        f_end = float(fault.get("end_ts") or f_start)
        if f_start - lifetime_s <= start <= f_end + SLACK_S and (end is None or end >= f_start - SLACK_S):
            return fault
    return None


def fault_label(fault: dict[str, Any], t0: float) -> str:
    return f"{fault['name']}@{float(fault['ts']) - t0:.1f}s"


def explain_duplicates(
    jobs: list[dict[str, Any]], faults: list[dict[str, Any]], t0: float, lifetime_s: float
) -> dict[str, Any]:
    """Match every cut attempt, and through them every duplicate execution, to the fault that cut it.

    A cut attempt has no end (its worker died or its outcome write failed) or ended cancelled; it must overlap
    a fault's window and be followed by another attempt of the same job. A job's duplicates are the executions
    no retry or redrive explains (analysis.jobs' definition); each needs one of the job's cut attempts (not
    its last) matched to a fault. lifetime_s: a job's lifetime (job timeout + orphan margin).
    """
    timed = sorted((f for f in faults if f.get("ts")), key=lambda f: float(f["ts"]))
    per_fault: dict[str, dict[str, Any]] = {
        fault_label(f, t0): {"cut": 0, "run_again": 0, "duplicates": 0, "run_again_within_s": None}
        for f in timed
    }
    explained: list[dict[str, Any]] = []
    unexplained: list[dict[str, Any]] = []
    stray_cuts: list[dict[str, Any]] = []
    for job in jobs:
        attempts = job.get("attempts") or []
        cut: list[tuple[dict[str, Any], str]] = []
        for i, attempt in enumerate(attempts):
            if attempt.get("end_ts") is not None and attempt.get("outcome") != "cancelled":
                continue
            fault = _cut_by(attempt, timed, lifetime_s)
            if fault is None:
                stray_cuts.append({"job_id": job["job_id"], "attempt": attempt})
                continue
            label = fault_label(fault, t0)
            entry = per_fault[label]
            entry["cut"] += 1
            if i < len(attempts) - 1:  # the next attempt is the re-run: seconds from the fault's start
                entry["run_again"] += 1
                delay = round(float(attempts[i + 1]["start_ts"]) - float(fault["ts"]), 1)
                entry["run_again_within_s"] = max(delay, entry["run_again_within_s"] or delay)
                cut.append((attempt, label))
        retries = sum(a.get("outcome") == "retry" for a in attempts)
        extra = max(0, int(job.get("executions") or 0) - 1 - retries - int(job.get("redrives") or 0))
        for attempt, label in cut[:extra]:
            per_fault[label]["duplicates"] += 1
            explained.append({"job_id": job["job_id"], "try": attempt.get("try"), "fault": label,
                              "outcome": attempt.get("outcome")})  # fmt: skip
        if len(cut) < extra:
            unexplained.append({"job_id": job["job_id"], "executions": job.get("executions"),
                                "attempts": attempts, "missing": extra - len(cut)})  # fmt: skip
    cut_total = sum(f["cut"] for f in per_fault.values())
    return {
        "duplicates": len(explained) + sum(u["missing"] for u in unexplained),
        "explained": len(explained),
        "cut": cut_total,
        "cut_run_again": sum(f["run_again"] for f in per_fault.values()),
        "per_fault": per_fault,
        "examples": explained[:5],
        "unexplained": unexplained,
        "stray_cuts": stray_cuts,
    }


def _pct(values: list[float], q: float) -> float | None:
    # exact, the report's own percentile (a latency that was measured)
    return float(percentile_values(np.asarray(values), [q])[0]) if values else None


def api_during_faults(
    samples: list[dict[str, str]], faults: list[dict[str, Any]], t0: float
) -> list[dict[str, Any]]:
    """API latency and errors per fault window (intended start within [start - 1 s, end + 1 s]) and outside them."""
    windows = [
        (
            f"{f['name']}@{float(f['ts']) - t0:.1f}s",
            float(f["ts"]) - SLACK_S,
            float(f.get("end_ts") or f["ts"]) + SLACK_S,
        )
        for f in faults
        if f.get("ts")
    ]
    rows: dict[str, list[dict[str, str]]] = {name: [] for name, _, _ in windows}
    outside: list[dict[str, str]] = []
    for row in samples:
        ts = float(row["intended_ts"])
        hit = [name for name, lo, hi in windows if lo <= ts <= hi]
        for name in hit:
            rows[name].append(row)
        if not hit:
            outside.append(row)
    out = []
    for name, group in [*rows.items(), ("outside faults", outside)]:
        lat = [float(r["latency_ms"]) for r in group]
        out.append({
            "window": name, "requests": len(group), "errors": sum(r["ok"] != "1" for r in group),
            "statuses": dict(Counter(r["status"] for r in group if r["ok"] != "1")),
            "p50_ms": _pct(lat, 50), "p99_ms": _pct(lat, 99), "max_ms": max(lat, default=None),
        })  # fmt: skip
    return out


def read_run(run_dir: Path) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """The offload samples (CSV rows) and job records (jobs/offload.jsonl) of a run folder."""
    samples: list[dict[str, str]] = []
    for path in sorted((run_dir / "samples").glob("offload-*.csv")):
        with path.open(newline="") as fh:
            samples.extend(csv.DictReader(fh))
    jobs_file = run_dir / "jobs" / "offload.jsonl"
    lines = jobs_file.read_text().splitlines() if jobs_file.exists() else []
    return samples, [json.loads(line) for line in lines if line.strip()]

"""Soak: a long offload run with a random fault every ~60 s (all kinds, seeded), then nothing lost (issue 14).

    .venv/bin/python benchmarks/bench_soak_faults.py [--minutes 10] [--every-s 60] [--rate 30] [--seed 1]

One ordinary `offload-bench run --modes offload` (the real stack: embedded Redis, API, workers, open-model
Locust) with the transient-failure and poison rates on for the whole run and, every ~every-s seconds (seeded
jitter of +-20 %), one of worker-sigterm, worker-sigkill, redis-restart and redis-freeze: each kind in turn in
a seeded order, so a 10-minute soak hits every kind at least twice. Short job timeouts make cut jobs re-run
within seconds. Verdict from the run's summary.json:
- lost == 0 and pending == 0: completed + dead-lettered == accepted;
- every duplicate explained: executions no retry or redrive explains (`duplicates`) are at most the attempts
  the faults cut (`orphaned`, summed over the faults) - each re-run of a cut attempt is the at-least-once
  guarantee at work, anything beyond is a bug;
- no API error outside the fault windows.
Exit 1 when a check fails. Run it under the shared lock: `flock /tmp/ob-heavy.lock .venv/bin/python ...`.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _stack import REPO, SHARED_CORES_NOTE, clean_env
from rich.console import Console
from rich.table import Table

KINDS = ("worker-sigterm", "worker-sigkill", "redis-restart", "redis-freeze")
RATE_FAULTS = ("transient-failures", "poison")
DOWN_S = {"redis-restart": 3.0, "redis-freeze": 5.0}
# cut jobs re-run once their in-progress key expires (job timeout + margin): seconds, not minutes
SERVICE_ENV = {
    "OFFLOAD_PAGES": "3",
    "OFFLOAD_IO_MS": "40",
    "OFFLOAD_CPU_MS": "1",
    "OFFLOAD_JOB_TIMEOUT_S": "5",
    "OFFLOAD_ORPHAN_MARGIN_S": "2",
    "OFFLOAD_RETRY_BASE_S": "0.05",
    "OFFLOAD_RETRY_CAP_S": "1",
    "OFFLOAD_SHUTDOWN_GRACE_S": "5",
}


def schedule(duration_s: float, every_s: float, seed: int) -> list[str]:
    """--fault specs: one timed fault every ~every_s (kinds in turn, seeded order and jitter) + the rate faults."""
    rng = random.Random(seed)
    order = list(KINDS)
    rng.shuffle(order)
    specs: list[str] = []
    at, i = every_s / 2, 0
    while at < duration_s - every_s / 2:
        kind = order[i % len(order)]
        down = f":{DOWN_S[kind]:g}s" if kind in DOWN_S else ""
        specs.append(f"{kind}@{at:.1f}s{down}")
        at += every_s * rng.uniform(0.8, 1.2)
        i += 1
    return [*specs, *RATE_FAULTS]


def verdict(summary: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The soak's figures and its failed checks (empty: passed)."""
    jobs = summary["modes"]["offload"]["jobs"]
    rel = summary.get("reliability") or {}
    timed = [f for f in rel.get("faults", []) if f.get("ts")]
    orphaned = sum((f.get("jobs") or {}).get("orphaned", 0) for f in timed)
    rerun = sum((f.get("jobs") or {}).get("rerun", 0) for f in timed)
    figures = {
        "accepted": jobs["accepted"],
        "completed": jobs["completed"],
        "dead_lettered": jobs["dead_lettered"],
        "pending": jobs["pending"],
        "lost": jobs["lost"],
        "retried": jobs.get("retried"),
        "duplicates": jobs["duplicates"],
        "orphaned_by_faults": orphaned,
        "rerun_of_orphaned": rerun,
        "faults_fired": len(timed),
        "errors_outside_faults": rel.get("errors_outside_faults"),
    }
    failed = []
    if jobs["lost"] != 0 or jobs["pending"] != 0:
        failed.append(f"lost {jobs['lost']}, pending {jobs['pending']} (want 0, 0)")
    if jobs["completed"] + jobs["dead_lettered"] != jobs["accepted"]:
        failed.append("completed + dead_lettered != accepted")
    if jobs["duplicates"] > orphaned:
        failed.append(f"{jobs['duplicates']} duplicates but only {orphaned} attempts cut by faults")
    if rerun != orphaned:
        failed.append(f"{orphaned - rerun} cut attempts never ran again")
    if rel.get("errors_outside_faults"):
        failed.append(f"{rel['errors_outside_faults']} API errors outside the fault windows")
    return figures, failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the offload phase")
    parser.add_argument("--every-s", type=float, default=60.0, help="mean seconds between faults")
    parser.add_argument("--rate", type=float, default=30.0, help="requests per second (open model)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for the run (default: a temporary one)"
    )
    args = parser.parse_args()
    console = Console(stderr=True)
    duration_s = args.minutes * 60
    faults = schedule(duration_s, args.every_s, args.seed)
    out = args.out or Path(tempfile.mkdtemp(prefix="soak-"))
    cmd = [
        sys.executable, "-m", "bench", "run", "--modes", "offload", "--duration", f"{duration_s:g}s",
        "--warmup", "5s", "--arrival-rate", f"{args.rate:g}", "--workers", str(args.workers),
        "--drain-timeout", "120s", "--seed", str(args.seed), "--out", str(out),
        *[a for spec in faults for a in ("--fault", spec)],
    ]  # fmt: skip
    console.print(f"soak: {duration_s:g} s at {args.rate:g}/s, faults: {' '.join(faults)}")
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=clean_env(**SERVICE_ENV), check=False)
    runs = sorted(p for p in out.iterdir() if p.is_dir())
    if not runs or not (runs[-1] / "summary.json").exists():
        console.print(f"error: the run wrote no summary (exit {proc.returncode}); see {out}")
        return 1
    summary = json.loads((runs[-1] / "summary.json").read_text())
    figures, failed = verdict(summary)
    table = Table(title=f"soak {duration_s:g} s, seed {args.seed} ({time.monotonic() - started:.0f} s wall)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in figures.items():
        table.add_row(name, str(value))
    console.print(table)
    for fault in [f for f in summary.get("reliability", {}).get("faults", []) if f.get("ts")]:
        api, jobs = fault.get("api") or {}, fault.get("jobs") or {}
        console.print(
            f"  {fault['name']:<15} api errors {api.get('errors')} {api.get('error_statuses')} "
            f"max error latency {api.get('max_error_latency_ms')} ms; orphaned {jobs.get('orphaned')} "
            f"rerun {jobs.get('rerun')} (max {jobs.get('rerun_max_s')} s); detail {fault.get('detail')}"
        )
    console.print(f"run folder: {runs[-1]}")
    console.print(SHARED_CORES_NOTE)
    for line in failed:
        console.print(f"FAIL: {line}")
    console.print("PASS" if not failed and proc.returncode == 0 else f"run exit code {proc.returncode}")
    return 1 if failed or proc.returncode not in (0,) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Soak: a long offload run with a random fault every ~60 s (all kinds, seeded), then nothing lost (issue 14).

    .venv/bin/python benchmarks/bench_soak_faults.py [--minutes 10] [--every-s 60] [--rate 30] [--seed 1]

One ordinary `offload-bench run --modes offload` (the real stack: embedded Redis, API, workers, open-model
Locust) with the transient-failure and poison rates on for the whole run and, every ~every-s seconds (seeded
jitter of +-20 %), one of worker-sigterm, worker-sigkill, redis-restart and redis-freeze: each kind in turn in
a seeded order, so a 10-minute soak hits every kind at least twice. Short job timeouts make cut jobs re-run
within seconds. Verdict from the run's summary.json:
- lost == 0 and pending == 0: completed + dead-lettered == accepted;
- every duplicate explained: each execution no retry or redrive explains (summary.json's `duplicates`) is
  matched, from the job records, to an attempt of that job that a fault cut (no end or cancelled, overlapping
  the fault's window) and that ran again - the at-least-once guarantee at work; anything else is a bug;
- every cut attempt lies in a fault's window and ran again; no API error outside the fault windows.
Printed: the faults with their times, per fault the attempts cut / run again / duplicates, the API's latency
and errors while each fault lasted and outside; all of it also in <out>/soak.json.
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

from _soak_match import api_during_faults, explain_duplicates, fault_label, read_run
from _stack import REPO, SHARED_CORES_NOTE, clean_env
from rich.console import Console
from rich.table import Table

KINDS = ("worker-sigterm", "worker-sigkill", "redis-restart", "redis-freeze")
RATE_FAULTS = ("transient-failures", "poison")
DOWN_S = {"redis-restart": 3.0, "redis-freeze": 5.0}
# the work profile goes on the command line: `run` hands its own profile to the service (OFFLOAD_PAGES & co
# in the environment would be overwritten)
WORK_ARGS = ("--pages", "3", "--io-ms", "40", "--cpu-ms", "1")
# cut jobs re-run once their in-progress key expires (job timeout + margin): seconds, not minutes
SERVICE_ENV = {
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


def verdict(summary: dict[str, Any], dup: dict[str, Any], sent: int) -> tuple[dict[str, Any], list[str]]:
    """The soak's figures and its failed checks (empty: passed); dup is explain_duplicates' answer."""
    jobs = summary["modes"]["offload"]["jobs"]
    rel = summary.get("reliability") or {}
    timed = [f for f in rel.get("faults", []) if f.get("ts")]
    figures = {
        "requests sent": sent,
        "accepted (202)": jobs["accepted"],
        "completed": jobs["completed"],
        "dead_lettered": jobs["dead_lettered"],
        "pending": jobs["pending"],
        "lost": jobs["lost"],
        "retried": jobs.get("retried"),
        "duplicates": jobs["duplicates"],
        "duplicates matched to a fault": dup["explained"],
        "attempts cut by faults": dup["cut"],
        "cut attempts run again": dup["cut_run_again"],
        "faults fired": len(timed),
        "API errors outside faults": rel.get("errors_outside_faults"),
    }
    failed = []
    if jobs["lost"] != 0 or jobs["pending"] != 0:
        failed.append(f"lost {jobs['lost']}, pending {jobs['pending']} (want 0, 0)")
    if jobs["completed"] + jobs["dead_lettered"] != jobs["accepted"]:
        failed.append("completed + dead_lettered != accepted")
    if dup["duplicates"] != jobs["duplicates"]:
        failed.append(
            f"{dup['duplicates']} duplicates in the job records, {jobs['duplicates']} in summary.json"
        )
    for job in dup["unexplained"]:
        failed.append(f"duplicate of {job['job_id']} matches no fault: {json.dumps(job['attempts'])}")
    if dup["cut_run_again"] != dup["cut"]:
        failed.append(f"{dup['cut'] - dup['cut_run_again']} cut attempts never ran again")
    for stray in dup["stray_cuts"]:
        failed.append(
            f"an attempt of {stray['job_id']} was cut outside every fault: {json.dumps(stray['attempt'])}"
        )
    if rel.get("errors_outside_faults"):
        failed.append(f"{rel['errors_outside_faults']} API errors outside the fault windows")
    if len(timed) != len([f for f in rel.get("faults", []) if f.get("name") in KINDS]):
        failed.append("a scheduled fault did not fire")
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
    parser.add_argument(
        "--check-run", type=Path, default=None, help="judge this existing soak run folder again; run nothing"
    )
    args = parser.parse_args()
    console = Console(stderr=True, width=130)  # the tables stay readable in a log file
    duration_s = args.minutes * 60
    faults = schedule(duration_s, args.every_s, args.seed)
    out = args.out or Path(tempfile.mkdtemp(prefix="soak-"))
    cmd = [
        sys.executable, "-m", "bench", "run", "--modes", "offload", "--duration", f"{duration_s:g}s",
        "--warmup", "5s", "--arrival-rate", f"{args.rate:g}", "--workers", str(args.workers),
        "--drain-timeout", "120s", "--seed", str(args.seed), "--out", str(out), *WORK_ARGS,
        *[a for spec in faults for a in ("--fault", spec)],
    ]  # fmt: skip
    started = time.monotonic()
    if args.check_run is not None:
        returncode, runs, out = 0, [args.check_run], args.check_run
    else:
        console.print(f"soak: {duration_s:g} s at {args.rate:g}/s, faults: {' '.join(faults)}")
        returncode = subprocess.run(cmd, cwd=REPO, env=clean_env(**SERVICE_ENV), check=False).returncode
        runs = sorted(p for p in out.iterdir() if p.is_dir())
    if not runs or not (runs[-1] / "summary.json").exists():
        console.print(f"error: the run wrote no summary (exit {returncode}); see {out}")
        return 1
    summary = json.loads((runs[-1] / "summary.json").read_text())
    samples, job_records = read_run(runs[-1])
    faults_fired = [f for f in summary.get("reliability", {}).get("faults", []) if f.get("ts")]
    t0 = min((float(r["intended_ts"]) for r in samples), default=time.time())  # the offload phase's start
    lifetime_s = float(SERVICE_ENV["OFFLOAD_JOB_TIMEOUT_S"]) + float(SERVICE_ENV["OFFLOAD_ORPHAN_MARGIN_S"])
    dup = explain_duplicates(job_records, faults_fired, t0, lifetime_s)
    figures, failed = verdict(summary, dup, len(samples))
    table = Table(title=f"soak {duration_s:g} s, seed {args.seed} ({time.monotonic() - started:.0f} s wall)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in figures.items():
        table.add_row(name, str(value))
    console.print(table)
    console.print("faults (seconds into the offload phase):")
    for fault in faults_fired:
        console.print(
            f"  {fault['name']:<15} at {float(fault['ts']) - t0:6.1f} s, lasted "
            f"{float(fault.get('end_ts') or fault['ts']) - float(fault['ts']):5.1f} s; "
            f"{json.dumps(dup['per_fault'][fault_label(fault, t0)])}; {json.dumps(fault.get('detail'))}"
        )
    console.print(f"duplicates, e.g.: {json.dumps(dup['examples'][:3])}")
    api = Table(title="API while each fault lasted (intended start within the fault +- 1 s) and outside")
    for col in ("window", "requests", "errors", "statuses", "p50_ms", "p99_ms", "max_ms"):
        api.add_column(col, justify="left" if col in ("window", "statuses") else "right")
    api_rows = api_during_faults(samples, faults_fired, t0)
    for row in api_rows:
        api.add_row(*(f"{v:.0f}" if isinstance(v, float) else str(v) for v in row.values()))
    console.print(api)
    record = {"command": cmd, "seed": args.seed, "figures": figures, "faults": faults_fired,
              "duplicates": dup, "api": api_rows, "failed": failed}  # fmt: skip
    (out / "soak.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    console.print(f"figures: {out / 'soak.json'}")
    console.print(f"run folder: {runs[-1]}")
    console.print(SHARED_CORES_NOTE)
    for line in failed:
        console.print(f"FAIL: {line}")
    console.print("PASS" if not failed and returncode == 0 else f"run exit code {returncode}")
    return 1 if failed or returncode not in (0,) else 0


if __name__ == "__main__":
    sys.exit(main())

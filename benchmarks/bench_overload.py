"""Benchmark: one worker under overload (issue 25), its concurrency following its own loop lag vs fixed ones.

    .venv/bin/python benchmarks/bench_overload.py [--jobs 600] [--io-jobs 3000] [--noop-jobs 6000]
                                                  [--quick] [--json PATH]

An arrival rate above a worker's capacity is a backlog the worker never empties: here the backlog is
enqueued up front (service.enqueue, the API's path) and one `python -m service.worker` drains it. Every
figure comes from the lifecycle records and the worker's own log, side by side in this one invocation:
(a) overload, the default work profile (10 pages x ~50 ms I/O + 3 ms CPU): the shipped defaults (adaptive
    claims, max_jobs 200) vs adaptivity off at max_jobs 10, 20, 50, 200 (adaptive first and last). Goodput =
    done jobs / (last done - first start); goal: adaptive >= 0.9 x the best fixed. Beside it per run: jobs
    retried, re-run (duplicates), Redis-error / unretrieved-task lines, the SIGTERM exit code, loop lag p99;
(b) 0.2 s I/O jobs and (c) no-op jobs, adaptive vs off in ABBA order: ratio of the medians, goals >= 0.9
    and >= 0.95 (an I/O-bound worker must still reach max_jobs; the ticker must cost ~nothing).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import redis
from _backlog import IO_PROFILE, NOOP_PROFILE, drain_rate, enqueue, wait_completed
from _stack import SHARED_CORES_NOTE, Figure, Result, start_worker, stop
from rich.console import Console
from rich.progress import Progress

from analysis.workerlog import percentile_ms
from bench.launch.redis_server import EmbeddedRedis
from service import lifecycle

DEFAULT_PROFILE: dict[str, str] = {}  # the shipped work profile and settings
FIXED = (200, 50, 20, 10)
BAD = ("redis unavailable", "redis error", "never retrieved", '"retrying"', "not recorded", "Traceback")


def _lag_p99(log_text: str) -> float | None:
    counts: dict[str, int] = {}
    for line in log_text.splitlines():
        if '"loop lag"' in line:
            for edge, n in json.loads(line).get("counts", {}).items():
                counts[edge] = counts.get(edge, 0) + int(n)
    return percentile_ms(counts, 0.99)


def run(
    store: EmbeddedRedis, n: int, env: dict[str, str], log: Path, progress: Progress, label: str
) -> dict[str, Any]:
    """Flush, enqueue n jobs, drain them with one worker (env), stop it; goodput and what went wrong."""
    client = redis.Redis.from_url(store.url)
    client.flushdb()
    job_ids = enqueue(store.url, n)
    worker = start_worker(store.url, log, OFFLOAD_LOG_LEVEL="INFO", **env)
    try:
        wait_completed(client, n, 600.0, progress, label, {})
    finally:
        code = stop(worker, 60.0)
    records = list(lifecycle.export_records(client, job_ids))
    client.close()
    text = log.read_text(errors="replace")
    out = drain_rate(records)
    out.update(
        retried=float(sum(1 for r in records if any(a.get("outcome") == "retry" for a in r["attempts"]))),
        bad_lines=float(sum(1 for line in text.splitlines() if any(b in line for b in BAD))),
        exit_code=float(code if code is not None else -1),
        lag_p99_ms=_lag_p99(text),
    )
    return out


def abba(
    store: EmbeddedRedis, n: int, profile: dict[str, str], tmp: Path, progress: Progress, what: str
) -> dict[str, Any]:
    """Adaptive (A) vs off (B) in A B B A order; the median jobs/s of each and their ratio."""
    rates: dict[str, list[float]] = {"on": [], "off": []}
    for i, key in enumerate(("on", "off", "off", "on")):
        env = {**profile, "OFFLOAD_ADAPTIVE_JOBS": "true" if key == "on" else "false"}
        res = run(store, n, env, tmp / f"w-{what}-{i}.log", progress, f"{what} adaptive {key} ({i + 1}/4)")
        rates[key].append(res["jobs_s"])
    on, off = statistics.median(rates["on"]), statistics.median(rates["off"])
    return {"on": on, "off": off, "ratio": on / off if off else float("nan"), "rates": rates}


def main() -> int:
    """Run the three comparisons and print the figures."""
    parser = argparse.ArgumentParser(description="one worker under overload: adaptive vs fixed concurrency")
    parser.add_argument("--jobs", type=int, default=600, help="default-profile jobs per overload run")
    parser.add_argument("--io-jobs", type=int, default=3000, help="0.2 s I/O jobs per run")
    parser.add_argument("--noop-jobs", type=int, default=6000, help="no-op jobs per run")
    parser.add_argument(
        "--parts", default="overload,io,noop", help="which comparisons to run (comma-separated)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny runs (a smoke test, figures meaningless)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here (for run_all.py)")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.io_jobs, args.noop_jobs = 60, 300, 500
    parts = set(args.parts.split(","))
    console = Console()
    over: dict[str, dict[str, Any]] = {}
    ab: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-overload-") as tmp_text:
        tmp = Path(tmp_text)
        store = EmbeddedRedis(tmp / "redis")
        try:
            store.start()
            with Progress(console=console, transient=True) as progress:
                fixed = [
                    (f"fixed-{m}", {"OFFLOAD_ADAPTIVE_JOBS": "false", "OFFLOAD_MAX_JOBS": str(m)})
                    for m in FIXED
                ]
                plan = [("adaptive-1", {}), *fixed, ("adaptive-2", {})] if "overload" in parts else []
                for name, env in plan:
                    over[name] = run(
                        store, args.jobs, env, tmp / f"w-{name}.log", progress, f"overload {name}"
                    )
                for part, n, profile in (
                    ("io", args.io_jobs, IO_PROFILE),
                    ("noop", args.noop_jobs, NOOP_PROFILE),
                ):
                    if part in parts:
                        ab[part] = abba(store, n, profile, tmp, progress, part)
        finally:
            store.cleanup()
    figures = []
    if over:
        figures += _overload_figures(over, args.jobs)
    for part, label, goal in (("io", "0.2 s I/O", 0.9), ("noop", "no-op", 0.95)):
        if part in ab:
            res = ab[part]
            print(
                f"{label} jobs/s, adaptive on / off (median of 2 each, ABBA): {res['on']:,.0f} / "
                f"{res['off']:,.0f} = {res['ratio']:.3f}; runs {res['rates']}"
            )
            figures.append(Figure(f"{label} jobs/s, adaptive / off", res["ratio"], goal, ">="))
    print(f"note: {SHARED_CORES_NOTE}")
    return Result("overload", figures, {"overload": over, **ab}).report(args.json)


def _overload_figures(over: dict[str, dict[str, Any]], jobs: int) -> list[Figure]:
    print(f"overload: {jobs} default-profile jobs drained by one worker (a backlog: arrivals above capacity)")
    print(
        f"    {'run':<11} {'jobs/s':>7} {'done':>6} {'retried':>7} {'re-run':>6} {'bad lines':>9} {'exit':>4} "
        f"{'lag p99 ms':>10}"
    )
    for name, r in over.items():
        lag = "–" if r["lag_p99_ms"] is None else f"{r['lag_p99_ms']:g}"
        print(
            f"    {name:<11} {r['jobs_s']:7.1f} {r['done']:6.0f} {r['retried']:7.0f} {r['duplicates']:6.0f} "
            f"{r['bad_lines']:9.0f} {r['exit_code']:4.0f} {lag:>10}"
        )
    adaptive = [v for k, v in over.items() if k.startswith("adaptive")]
    best_name = max((k for k in over if k.startswith("fixed")), key=lambda k: over[k]["jobs_s"])
    goodput = statistics.median(r["jobs_s"] for r in adaptive)
    ratio = goodput / over[best_name]["jobs_s"]
    faults = sum(r["retried"] + r["duplicates"] + r["bad_lines"] + abs(r["exit_code"]) for r in adaptive)
    print(
        f"    adaptive goodput {goodput:.1f} jobs/s (median of 2) = {ratio:.2f} x the best fixed ({best_name})"
    )
    return [
        Figure("overload goodput, adaptive / best fixed max_jobs", ratio, 0.9, ">="),
        Figure("overload, adaptive: retried + re-run + error lines + exit code", faults, 0.0, "<="),
    ]


if __name__ == "__main__":
    sys.exit(main())

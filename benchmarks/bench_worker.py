"""Benchmark: one worker process (`python -m service.worker`) draining pre-enqueued jobs, and idle pickup.

    .venv/bin/python benchmarks/bench_worker.py [--io-jobs 6000] [--noop-jobs 15000] [--pickups 50]
                                                [--quick] [--json PATH]

Jobs are enqueued with service.enqueue (the API's one-round-trip, arq-compatible path) into an embedded
Redis before the worker starts; the worker runs at the shipped defaults (max_jobs, poll_delay_s) with
OFFLOAD_LOG_LEVEL=WARNING. Every figure comes from the lifecycle records (service.lifecycle.export_records):
(a) 0.2 s I/O jobs (pages=1, io_ms=200, io_sigma=0, cpu_ms=0): jobs/s = jobs / (last done - first start),
    goal >= 450 per process; slot efficiency = jobs/s / (max_jobs / 0.2 s) beside it;
(b) no-op jobs (pages=0), lifecycle records on: jobs/s, goal >= 1.5k;
(c) idle pickup: one job at a time into an idle worker, random gaps (so the enqueue falls anywhere in the
    poll cycle); p50 of (first attempt start - enqueued_ts), goal <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import _profile
import numpy as np
import redis
from _stack import SHARED_CORES_NOTE, Figure, Result, cpu_seconds, start_worker, stop
from redis.asyncio import Redis as AsyncRedis
from rich.console import Console
from rich.progress import Progress

from bench.launch.redis_server import EmbeddedRedis
from service import keys, lifecycle
from service.enqueue import enqueue_backfill
from service.settings import Settings

IO_JOB_S = 0.2
IO_GOAL_JOBS_S = 450.0
NOOP_GOAL_JOBS_S = 1500.0
PICKUP_GOAL_MS = 50.0
IO_PROFILE = {"OFFLOAD_PAGES": "1", "OFFLOAD_IO_MS": "200", "OFFLOAD_IO_SIGMA": "0", "OFFLOAD_CPU_MS": "0"}
NOOP_PROFILE = {"OFFLOAD_PAGES": "0", "OFFLOAD_CPU_MS": "0"}


async def _enqueue(url: str, n: int, chunk: int = 500) -> list[str]:
    """Enqueue n backfill jobs (source record + arq job) exactly as POST /offload/sources does."""
    client = AsyncRedis.from_url(url)
    job_ids: list[str] = []
    try:
        for start in range(0, n, chunk):
            batch = []
            for _ in range(min(chunk, n - start)):
                source_id, job_id = uuid.uuid4().hex, uuid.uuid4().hex
                fields: dict[str, str | int | float] = {
                    "user_id": f"bench-{source_id[:8]}", "name": "bench source", "mode": "offload",
                    "state": "pending", "attempts": 0, "created_ts": f"{time.time():.3f}", "job_id": job_id,
                }  # fmt: skip
                batch.append(
                    enqueue_backfill(
                        client,
                        source_id=source_id,
                        job_id=job_id,
                        now_ms=int(time.time() * 1000),
                        source_fields=fields,
                        record_ttl_s=3600,
                    )
                )
                job_ids.append(job_id)
            await asyncio.gather(*batch)
    finally:
        await client.aclose()
    return job_ids


def enqueue(url: str, n: int) -> list[str]:
    """Sync wrapper of _enqueue."""
    return asyncio.run(_enqueue(url, n))


def wait_completed(
    client: redis.Redis, n: int, timeout_s: float, progress: Progress, label: str, pids: dict[str, int | None]
) -> dict[str, float]:
    """Wait until the STATS completed counter reaches n (or the timeout: the figure then counts what ran).

    Returns each pid's CPU time per completed job (us) and its CPU share of the wall time, counted from the
    first completed job on (the worker's start-up imports are not a job's cost).
    """
    task = progress.add_task(label, total=n)
    deadline = time.monotonic() + timeout_s
    first: tuple[float, int, dict[str, float]] | None = None
    done = 0
    while time.monotonic() < deadline:
        done = lifecycle.queue_depth(client)["completed"]
        if first is None and done > 0:
            first = (time.monotonic(), done, {k: cpu_seconds(pid) for k, pid in pids.items()})
        progress.update(task, completed=done)
        if done >= n:
            break
        time.sleep(0.1)
    progress.remove_task(task)
    out: dict[str, float] = {}
    if first is not None and done > first[1]:
        wall_s, jobs = time.monotonic() - first[0], done - first[1]
        for k, pid in pids.items():
            used = cpu_seconds(pid) - first[2][k]
            out[f"{k}_us_per_job"] = used / jobs * 1e6
            out[f"{k}_cpu_share"] = used / wall_s
    return out


def drain_rate(records: list[dict[str, Any]]) -> dict[str, float]:
    """jobs/s from the records: done jobs / (last done_ts - first attempt start)."""
    done = [r for r in records if r["state"] == "done"]
    starts = [r["attempts"][0]["start_ts"] for r in records if r["attempts"]]
    if not done or not starts:
        return {"jobs": 0.0, "done": 0.0, "span_s": 0.0, "jobs_s": 0.0, "duplicates": 0.0}
    span_s = max(r["done_ts"] for r in done) - min(starts)
    return {
        "jobs": float(len(records)),
        "done": float(len(done)),
        "span_s": span_s,
        "jobs_s": len(done) / span_s if span_s > 0 else 0.0,
        "duplicates": float(sum(1 for r in records if r["executions"] > 1)),
    }


def drain(
    store: EmbeddedRedis,
    n: int,
    profile: dict[str, str],
    log: Path,
    progress: Progress,
    label: str,
    spy_out: Path | None = None,
) -> dict[str, float]:
    """Flush, enqueue n jobs, start one worker, wait for all of them, stop it; the drain rate.

    spy_out: record a py-spy profile of the worker there (it slows the worker: figures are then indicative).
    """
    client = redis.Redis.from_url(store.url)
    client.flushdb()
    job_ids = enqueue(store.url, n)
    worker = start_worker(store.url, log, **profile)
    spy = _profile.attach(worker.pid, spy_out) if spy_out is not None and worker.pid else None
    pids = {"worker": worker.pid, "redis": store.proc.pid if store.proc else None}
    try:
        cpu = wait_completed(client, n, 120.0, progress, label, pids)
    finally:
        stop(worker)
        if spy is not None:
            spy.wait(30)
    records = list(lifecycle.export_records(client, job_ids))
    client.close()
    return {**drain_rate(records), **cpu}


def pickup(store: EmbeddedRedis, n: int, log: Path, progress: Progress, seed: int = 1) -> list[float]:
    """Enqueue n jobs one at a time into an idle worker; (first start - enqueued_ts) in ms per job."""
    client = redis.Redis.from_url(store.url)
    client.flushdb()
    worker = start_worker(store.url, log, **NOOP_PROFILE)
    rng = random.Random(seed)
    lat_ms: list[float] = []
    try:
        deadline = time.monotonic() + 30
        while not lifecycle.live_workers(client):  # its heartbeat: the worker is up and polling
            if time.monotonic() > deadline or not worker.alive():
                raise SystemExit(f"error: the worker did not start (log: {log})")
            time.sleep(0.05)
        time.sleep(0.5)
        task = progress.add_task("idle pickups", total=n)
        for _ in range(n):
            # a random gap puts the enqueue at a random point of the worker's poll cycle
            time.sleep(rng.uniform(0.02, 0.12))
            (job_id,) = enqueue(store.url, 1)
            job_deadline = time.monotonic() + 10
            while client.hget(keys.job(job_id), "state") != b"done" and time.monotonic() < job_deadline:  # type: ignore[comparison-overlap]
                time.sleep(0.002)
            (rec,) = lifecycle.export_records(client, [job_id])
            if rec["attempts"] and rec["enqueued_ts"] is not None:
                lat_ms.append((rec["attempts"][0]["start_ts"] - rec["enqueued_ts"]) * 1000)
            progress.advance(task)
        progress.remove_task(task)
    finally:
        stop(worker)
        client.close()
    return lat_ms


def main() -> int:
    """Run the three worker scenarios and print the figures."""
    parser = argparse.ArgumentParser(description="worker jobs/s (0.2 s I/O and no-op jobs), idle pickup")
    parser.add_argument("--io-jobs", type=int, default=6000, help="0.2 s I/O jobs to drain")
    parser.add_argument("--noop-jobs", type=int, default=15000, help="no-op jobs to drain")
    parser.add_argument("--pickups", type=int, default=50, help="jobs enqueued one at a time (idle pickup)")
    parser.add_argument("--quick", action="store_true", help="tiny runs (a smoke test, figures meaningless)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here (for run_all.py)")
    parser.add_argument(
        "--profile", type=Path, default=None, help="py-spy the worker; profiles in this folder"
    )
    args = parser.parse_args()
    if args.quick:
        args.io_jobs, args.noop_jobs, args.pickups = 300, 500, 5
    defaults = Settings.model_fields
    max_jobs = int(defaults["max_jobs"].default)
    poll_delay_s = float(defaults["poll_delay_s"].default)
    console = Console()
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp_text:
        tmp = Path(tmp_text)
        store = EmbeddedRedis(tmp / "redis")
        try:
            store.start()
            with Progress(console=console, transient=True) as progress:
                spy = {k: args.profile / f"worker-{k}.txt" if args.profile else None for k in ("io", "noop")}
                if args.profile:
                    args.profile.mkdir(parents=True, exist_ok=True)
                io = drain(
                    store, args.io_jobs, IO_PROFILE, tmp / "w-io.log", progress, "0.2 s I/O jobs", spy["io"]
                )
                noop = drain(
                    store,
                    args.noop_jobs,
                    NOOP_PROFILE,
                    tmp / "w-noop.log",
                    progress,
                    "no-op jobs",
                    spy["noop"],
                )
                pick_ms = pickup(store, args.pickups, tmp / "w-pickup.log", progress)
        finally:
            store.cleanup()
    ideal = max_jobs / IO_JOB_S
    efficiency = io["jobs_s"] / ideal
    print(f"worker defaults: max_jobs {max_jobs}, poll_delay_s {poll_delay_s:g}; one worker process")
    print(
        f"(a) 0.2 s I/O jobs: {io['done']:,.0f}/{io['jobs']:,.0f} done in {io['span_s']:.2f} s = "
        f"{io['jobs_s']:,.0f} jobs/s; slot efficiency {efficiency:.2f} (ideal {ideal:,.0f} jobs/s); "
        f"re-runs {io['duplicates']:.0f}"
    )
    print(
        f"(b) no-op jobs: {noop['done']:,.0f}/{noop['jobs']:,.0f} done in {noop['span_s']:.2f} s = "
        f"{noop['jobs_s']:,.0f} jobs/s; re-runs {noop['duplicates']:.0f}"
    )
    if "worker_us_per_job" in noop:
        print(
            f"    what (b) depends on: the worker's CPU per no-op job {noop['worker_us_per_job']:,.0f} us "
            f"(at {noop['worker_cpu_share']:.0%} of a core; Redis {noop['redis_us_per_job']:,.0f} us per job, "
            f"{noop['redis_cpu_share']:.0%} of a core): a worker near 100 % of a core is CPU-bound, its jobs/s "
            f"~ 1e6 / its us per job ({1e6 / noop['worker_us_per_job']:,.0f}); that CPU is mostly redis-py/asyncio "
            "work on 3 Redis round trips per job: arq's start, ours, one finish script (see README, --profile)"
        )
    p50 = float(np.percentile(pick_ms, 50)) if pick_ms else float("nan")
    p95 = float(np.percentile(pick_ms, 95)) if pick_ms else float("nan")
    print(f"(c) idle pickup over {len(pick_ms)} jobs: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    print(f"note: {SHARED_CORES_NOTE}")
    if args.profile:
        print("profiled with py-spy (slows the worker): the figures above are indicative only")
        for key, label in (("io", "the worker, 0.2 s I/O jobs"), ("noop", "the worker, no-op jobs")):
            path = spy[key]
            if path is not None and path.exists():
                _profile.print_top(path, label)
    # what the no-op rate depends on (absent when a --quick run finished before a second progress poll)
    cpu_figures = [
        Figure(name, noop[key], 0.0, "info", unit)
        for name, key, unit in (
            ("worker CPU per no-op job", "worker_us_per_job", " us"),
            ("worker CPU share (cores) while draining no-op jobs", "worker_cpu_share", ""),
        )
        if key in noop
    ]
    result = Result(
        "worker",
        [
            Figure("0.2 s I/O jobs/s per process", io["jobs_s"], IO_GOAL_JOBS_S, ">="),
            Figure("slot efficiency of (a)", efficiency, 0.0, "info"),
            Figure("no-op jobs/s per process", noop["jobs_s"], NOOP_GOAL_JOBS_S, ">="),
            *cpu_figures,
            Figure("idle pickup p50", p50, PICKUP_GOAL_MS, "<=", " ms"),
        ],
        {
            "max_jobs": max_jobs,
            "poll_delay_s": poll_delay_s,
            "io": io,
            "noop": noop,
            "pickup_ms": {"p50": p50, "p95": p95, "n": len(pick_ms)},
        },
    )
    return result.report(args.json)


if __name__ == "__main__":
    sys.exit(main())

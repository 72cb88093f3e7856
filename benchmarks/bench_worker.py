"""Benchmark: our worker (`python -m service.worker`) against arq's stock `Worker`, side by side, and idle pickup.

    .venv/bin/python benchmarks/bench_worker.py [--io-jobs 2000] [--noop-jobs 4000] [--pairs 3]
        [--max-pairs 6] [--budget-s 100] [--pickups 20] [--quick] [--json PATH]

Jobs are enqueued with service.enqueue (the API's one-round-trip, arq-compatible path) into an embedded
Redis before a worker starts; then one worker process drains them: ours at the shipped defaults, or the peer
(benchmarks/_arq_stock.py: arq's own `Worker` class with the same job function, Redis, slot count, poll delay
and the rest of our arq arguments). Runs alternate ours/stock, stock/ours (pairs adjacent in time). Both are
timed the same way, from arq's queue (a job leaves `arq:queue` when it is finished): jobs/s = jobs finished
after the first one / the time since it; the worker's CPU per job over the same span.
(a) no-op jobs (pages=0), every reliability feature on: ours / stock jobs/s per pair, goal >= 1.3 (median of
    the pairs, 95 % bootstrap interval; undecided adds pairs up to --max-pairs or --budget-s);
(b) 0.2 s I/O jobs (pages=1, io_ms=200, io_sigma=0, cpu_ms=0): ours / stock, information;
(c) idle pickup of ours (information): one job at a time into an idle worker, random gaps; p50 of
    (first attempt start - enqueued_ts).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import redis
from _backlog import IO_PROFILE, NOOP_PROFILE, enqueue
from _machine import Watch
from _stack import REPO, SHARED_CORES_NOTE, Figure, Result, clean_env, cpu_seconds, start_worker, stop
from _verdict import run_pairs
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bench.launch.procs import ManagedProcess
from bench.launch.redis_server import EmbeddedRedis
from service import keys, lifecycle
from service.settings import Settings

IO_JOB_S = 0.2
NOOP_RATIO_GOAL = 1.3  # ours / stock arq, no-op jobs (issue 22)
QUEUE = "arq:queue"  # a job stays in arq's queue until it is finished (by either worker)
STOCK = [sys.executable, str(Path(__file__).resolve().parent / "_arq_stock.py")]
SIDES = ("ours", "stock")


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


def timed_drain(
    store: EmbeddedRedis, n: int, profile: dict[str, str], log: Path, progress: Progress, side: str
) -> dict[str, float]:
    """Flush, enqueue n jobs, drain them with one worker (ours or arq's stock one), stop it.

    Timed from arq's queue, the same way for both: jobs finished after the first one / the time since it,
    and the worker's CPU time per job over that span. Checked: every job started an attempt (its lifecycle
    record), so a worker failing its jobs fast cannot pass for a fast one.
    """
    client = redis.Redis.from_url(store.url)
    client.flushdb()
    job_ids = enqueue(store.url, n)
    if side == "stock":
        env = clean_env(
            OFFLOAD_REDIS_URL=store.url, OFFLOAD_LOG_LEVEL="WARNING", PYTHONPATH=str(REPO), **profile
        )
        worker = ManagedProcess("stock-worker", STOCK, env, log, cwd=REPO).start()
    else:
        worker = start_worker(store.url, log, **profile)
    task = progress.add_task(f"{side}: {n:,} jobs", total=n)
    first: tuple[float, int, float] | None = None
    last: tuple[float, int, float] = (time.monotonic(), 0, 0.0)
    deadline = time.monotonic() + 180.0
    try:
        while time.monotonic() < deadline and worker.alive():
            done = n - int(client.zcard(QUEUE))
            last = (time.monotonic(), done, cpu_seconds(worker.pid))
            if first is None and done > 0:
                first = last
            progress.update(task, completed=done)
            if done >= n:
                break
            time.sleep(0.01)
    finally:
        progress.remove_task(task)
        stop(worker)
    started = sum(1 for r in lifecycle.export_records(client, job_ids) if r["attempts"])
    client.close()
    errors = sum(1 for line in log.read_text(errors="replace").splitlines() if "Traceback" in line)
    if first is None or last[1] <= first[1]:
        return {"jobs_s": float("nan"), "cpu_us": float("nan"), "cpu_share": float("nan"),
                "done": float(last[1]), "started": float(started), "errors": float(errors)}  # fmt: skip
    span_s, jobs = last[0] - first[0], last[1] - first[1]
    return {
        "jobs_s": jobs / span_s,
        "cpu_us": (last[2] - first[2]) / jobs * 1e6,
        "cpu_share": (last[2] - first[2]) / span_s,
        "done": float(last[1]),
        "started": float(started),
        "errors": float(errors),
    }


def compare(
    store: EmbeddedRedis, n: int, profile: dict[str, str], tmp: Path, progress: Progress, what: str,
    pairs: tuple[int, int], budget_s: float, watch: Watch, goal: float | None,
) -> dict[str, Any]:  # fmt: skip
    """ours/stock, stock/ours, ... pairs of drains; per pair the ratio of jobs/s (ours / stock)."""
    runs: list[dict[str, Any]] = []
    ratios: list[float] = []
    busy: list[bool] = []

    def one_pair(i: int) -> None:
        free = watch.check(f"{what} pair {i + 1}")
        got = {}
        for side in SIDES if i % 2 == 0 else SIDES[::-1]:
            got[side] = timed_drain(store, n, profile, tmp / f"{what}-{i}-{side}.log", progress, side)
            runs.append({"pair": i, "side": side, **got[side]})
        ratios.append(got["ours"]["jobs_s"] / got["stock"]["jobs_s"])
        busy.append(not free)

    def decided() -> bool:
        if goal is None:
            return True
        return Figure.from_pairs("", ratios, goal, ">=").verdict in ("met", "missed")

    run_pairs(one_pair, decided, pairs[0], pairs[1], budget_s)
    return {"runs": runs, "ratios": ratios, "busy": any(busy)}


def _median(runs: list[dict[str, Any]], side: str, key: str) -> float:
    values = [r[key] for r in runs if r["side"] == side]
    return float(np.median(values)) if values else float("nan")


def main() -> int:
    """Run ours against arq's stock worker (no-op and 0.2 s I/O jobs), idle pickup; print the figures."""
    parser = argparse.ArgumentParser(description="our worker / arq's stock worker (jobs/s), idle pickup")
    parser.add_argument("--io-jobs", type=int, default=2000, help="0.2 s I/O jobs per drain")
    parser.add_argument("--noop-jobs", type=int, default=4000, help="no-op jobs per drain")
    parser.add_argument("--pairs", type=int, default=3, help="ours/stock pairs at least (no-op)")
    parser.add_argument("--max-pairs", type=int, default=6, help="no-op pairs at most (while undecided)")
    parser.add_argument("--io-pairs", type=int, default=2, help="0.2 s I/O pairs (information)")
    parser.add_argument("--budget-s", type=float, default=100.0, help="no more no-op pairs after this")
    parser.add_argument("--pickups", type=int, default=20, help="jobs enqueued one at a time (idle pickup)")
    parser.add_argument("--quick", action="store_true", help="tiny runs (a smoke test, figures meaningless)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here (for run_all.py)")
    args = parser.parse_args()
    if args.quick:
        args.io_jobs, args.noop_jobs, args.pickups = 200, 300, 3
        args.pairs = args.max_pairs = args.io_pairs = 1
    defaults = Settings.model_fields
    max_jobs = int(defaults["max_jobs"].default)
    poll_delay_s = float(defaults["poll_delay_s"].default)
    console = Console()
    watch = Watch(window_s=0.1 if args.quick else 1.0)
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp_text:
        tmp = Path(tmp_text)
        store = EmbeddedRedis(tmp / "redis")
        try:
            store.start()
            with Progress(console=console, transient=True) as progress:
                noop = compare(store, args.noop_jobs, NOOP_PROFILE, tmp, progress, "noop",
                               (args.pairs, args.max_pairs), args.budget_s, watch, NOOP_RATIO_GOAL)  # fmt: skip
                io = compare(store, args.io_jobs, IO_PROFILE, tmp, progress, "io",
                             (args.io_pairs, args.io_pairs), 0.0, watch, None)  # fmt: skip
                pick_ms = pickup(store, args.pickups, tmp / "w-pickup.log", progress)
        finally:
            store.cleanup()
    table = Table(title="worker drains, ours vs arq's stock Worker (alternating pairs)")
    for col in ("jobs", "pair", "worker", "jobs/s", "CPU us/job", "CPU share", "started", "tracebacks"):
        table.add_column(col, justify="right")
    for what, res in (("no-op", noop), ("0.2 s I/O", io)):
        for r in res["runs"]:
            table.add_row(what, str(r["pair"] + 1), r["side"], f"{r['jobs_s']:,.0f}", f"{r['cpu_us']:,.0f}",
                          f"{r['cpu_share']:.0%}", f"{r['started']:,.0f}/{r['done']:,.0f}", f"{r['errors']:.0f}")  # fmt: skip
    console.print(table)
    print(f"both workers: max_jobs {max_jobs}, poll_delay_s {poll_delay_s:g}; one process each; the stock one "
          "is arq's Worker class with our arq arguments and job function, on the stdlib asyncio loop")  # fmt: skip
    print("ours / stock per pair: no-op " + ", ".join(f"{r:.2f}" for r in noop["ratios"])
          + "; 0.2 s I/O " + ", ".join(f"{r:.2f}" for r in io["ratios"]))  # fmt: skip
    p50 = float(np.percentile(pick_ms, 50)) if pick_ms else float("nan")
    p95 = float(np.percentile(pick_ms, 95)) if pick_ms else float("nan")
    print(f"idle pickup (ours) over {len(pick_ms)} jobs: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    print(watch.text())
    print(f"note: {SHARED_CORES_NOTE}")
    figures = [
        Figure.from_pairs("no-op jobs/s, ours / stock arq", noop["ratios"], NOOP_RATIO_GOAL, ">=", busy=noop["busy"]),
        Figure("worker CPU per no-op job, ours", _median(noop["runs"], "ours", "cpu_us"), 0.0, "info", " us"),
        Figure("worker CPU per no-op job, stock arq", _median(noop["runs"], "stock", "cpu_us"), 0.0, "info", " us"),
        Figure("no-op jobs/s, ours (info)", _median(noop["runs"], "ours", "jobs_s"), 0.0, "info"),
        Figure("no-op jobs/s, stock arq (info)", _median(noop["runs"], "stock", "jobs_s"), 0.0, "info"),
        Figure.from_pairs("0.2 s I/O jobs/s, ours / stock arq", io["ratios"], 0.0, "info"),
        Figure("worker CPU per 0.2 s I/O job, ours", _median(io["runs"], "ours", "cpu_us"), 0.0, "info", " us"),
        Figure("worker CPU per 0.2 s I/O job, stock arq", _median(io["runs"], "stock", "cpu_us"), 0.0, "info", " us"),
        Figure("0.2 s I/O slot efficiency, ours", _median(io["runs"], "ours", "jobs_s") / (max_jobs / IO_JOB_S), 0.0, "info"),
        Figure("idle pickup p50, ours (info)", p50, 0.0, "info", " ms"),
    ]  # fmt: skip
    details = {"max_jobs": max_jobs, "poll_delay_s": poll_delay_s, "noop": noop, "io": io,
               "pickup_ms": {"p50": p50, "p95": p95, "n": len(pick_ms)}, "machine_checks": watch.summary()}  # fmt: skip
    return Result("worker", figures, details).report(args.json)


if __name__ == "__main__":
    sys.exit(main())

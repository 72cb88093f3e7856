"""A backlog of real backfill jobs for the worker benchmarks: the work profiles, the API's enqueue path, the
wait for the completed counter, and the drain rate from the job records (bench_worker, bench_overload)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import redis
from _stack import cpu_seconds
from redis.asyncio import Redis as AsyncRedis
from rich.progress import Progress

from service import lifecycle
from service.enqueue import enqueue_backfill

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

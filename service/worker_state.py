"""What a worker process shares with its jobs (WorkerState in ctx["ob"]) and its start/stop hooks.

on_startup refuses a Redis that can evict our queue and starts the heartbeat: one member of the ob:workers
zset per process (what /healthz counts with one ZCOUNT, no SCAN), which also drops expired claims from
lifecycle.RUNNING. on_shutdown removes the member. The arq Worker around the jobs is service/worker_runtime.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Final

from redis.exceptions import RedisError

from service import keys, lifecycle
from service.parking import check_eviction
from service.settings import Settings

HEARTBEAT_EVERY_S: Final = 1.0

log = logging.getLogger("service.worker")


@dataclass
class WorkerState:
    """Per-process state the job wrapper reads from ctx["ob"]."""

    settings: Settings
    worker_id: str
    rng: random.Random
    hard_stop: bool = False  # the shutdown grace ended: jobs that have not started yet must not start
    # job id -> the KEYS/ARGV of its lifecycle end (lifecycle.END_LUA), to run in arq's finish of that job
    finish_ends: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)


def claim_s(settings: Settings) -> float:
    """How long a claimed job stays claimed (arq's in-progress TTL): after SIGKILL it re-runs within this."""
    return settings.job_timeout_s + settings.orphan_margin_s


async def _heartbeat(redis: Any, worker_id: str) -> None:
    # ZADD ob:workers id=now for /healthz (pruning beats older than the TTL: SIGKILLed workers), and drop
    # expired claims from the RUNNING zset
    while True:
        now_ms = int(time.time() * 1000)
        try:
            async with redis.pipeline(transaction=False) as pipe:
                pipe.zadd(keys.WORKERS, {worker_id: now_ms})
                pipe.zremrangebyscore(keys.WORKERS, "-inf", now_ms - keys.HEARTBEAT_TTL_S * 1000)
                pipe.zremrangebyscore(lifecycle.RUNNING, "-inf", now_ms)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("heartbeat failed", extra={"error": f"{type(exc).__name__}: {exc}"})
        await asyncio.sleep(HEARTBEAT_EVERY_S)


async def on_startup(ctx: dict[str, Any]) -> None:
    """Check that Redis will not evict our queue (EvictionRiskError), start the heartbeat."""
    st: WorkerState = ctx["ob"]
    await check_eviction(ctx["redis"], st.settings.allow_evicting_redis)
    ctx["heartbeat_task"] = asyncio.create_task(_heartbeat(ctx["redis"], st.worker_id))
    log.info("worker started", extra={"worker_id": st.worker_id, "max_jobs": st.settings.max_jobs})


async def on_shutdown(ctx: dict[str, Any]) -> None:
    """Stop the heartbeat and remove it (the worker is gone, /healthz should not count it)."""
    st: WorkerState = ctx["ob"]
    task = ctx.pop("heartbeat_task", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    with contextlib.suppress(RedisError, OSError):
        await ctx["redis"].zrem(keys.WORKERS, st.worker_id)

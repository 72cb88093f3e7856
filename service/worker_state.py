"""What a worker process shares with its jobs (WorkerState in ctx["ob"]) and its start/stop hooks.

on_startup refuses a Redis that can evict our queue and starts the heartbeat: one member of the ob:workers
zset per process (what /healthz counts with one ZCOUNT, no SCAN), which also drops expired claims from
lifecycle.RUNNING, and the loop lag of the last beat in the keys.WORKERS_LAG hash (also logged as a
"loop lag" line per beat: what analysis reads from the run folder's worker logs). on_shutdown removes both. The arq Worker around the jobs is service/worker_runtime.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable
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
    # the loop lag since the last call (service/worker_runtime.py sets it), for the heartbeat
    lag_report: Callable[[], dict[str, Any]] | None = None


def claim_s(settings: Settings) -> float:
    """How long a claimed job stays claimed (arq's in-progress TTL): after SIGKILL it re-runs within this."""
    return settings.job_timeout_s + settings.orphan_margin_s


def _lag_beat(st: WorkerState) -> str | None:
    # the lag since the last beat, logged (the run folder keeps the worker's log) and stored for live readers
    if st.lag_report is None:
        return None
    report = st.lag_report()
    if report["ticks"]:
        log.info("loop lag", extra={"worker_id": st.worker_id, **report})
    return json.dumps({"ts": round(time.time(), 3), **{k: v for k, v in report.items() if k != "counts"}})


async def _heartbeat(redis: Any, st: WorkerState) -> None:
    # ZADD ob:workers id=now for /healthz (pruning beats older than the TTL: SIGKILLed workers), the lag of
    # the last beat, and drop expired claims from the RUNNING zset
    while True:
        now_ms = int(time.time() * 1000)
        lag = _lag_beat(st)
        try:
            async with redis.pipeline(transaction=False) as pipe:
                pipe.zadd(keys.WORKERS, {st.worker_id: now_ms})
                pipe.zremrangebyscore(keys.WORKERS, "-inf", now_ms - keys.HEARTBEAT_TTL_S * 1000)
                pipe.zremrangebyscore(lifecycle.RUNNING, "-inf", now_ms)
                if lag is not None:
                    pipe.hset(keys.WORKERS_LAG, st.worker_id, lag)
                    pipe.expire(keys.WORKERS_LAG, keys.HEARTBEAT_TTL_S)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("heartbeat failed", extra={"error": f"{type(exc).__name__}: {exc}"})
        await asyncio.sleep(HEARTBEAT_EVERY_S)


async def on_startup(ctx: dict[str, Any]) -> None:
    """Check that Redis will not evict our queue (EvictionRiskError), start the heartbeat."""
    st: WorkerState = ctx["ob"]
    await check_eviction(ctx["redis"], st.settings.allow_evicting_redis)
    ctx["heartbeat_task"] = asyncio.create_task(_heartbeat(ctx["redis"], st))
    cfg = st.settings
    log.info(
        "worker started",
        extra={
            "worker_id": st.worker_id,
            "max_jobs": cfg.max_jobs,
            "adaptive_jobs": cfg.adaptive_jobs,
            "loop_lag_bound_ms": cfg.loop_lag_bound_ms,
        },
    )


async def on_shutdown(ctx: dict[str, Any]) -> None:
    """Stop the heartbeat and remove it (the worker is gone, /healthz should not count it)."""
    st: WorkerState = ctx["ob"]
    task = ctx.pop("heartbeat_task", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    _lag_beat(st)  # the last lines of lag
    with contextlib.suppress(RedisError, OSError):
        async with ctx["redis"].pipeline(transaction=False) as pipe:
            pipe.zrem(keys.WORKERS, st.worker_id)
            pipe.hdel(keys.WORKERS_LAG, st.worker_id)
            await pipe.execute()

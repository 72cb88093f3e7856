"""The arq job: the backfill wrapped with retries, a dead-letter queue and lifecycle records; and the entry
point. `python -m service.worker` runs one worker process with settings from the environment.

What arq does not give and this module adds:
- arq retries only on `Retry`; every other exception ends a job, and when `job_try > max_tries` arq ends it
  without any hook. So arq gets a try limit it never reaches (ARQ_MAX_TRIES) and the wrapper enforces ours
  from ctx["job_try"] (which cancellations and crashes bump too): an attempt that may not run again parks
  the job in our DLQ and returns normally, so no path ends a job outside the DLQ.
The process around it (graceful SIGTERM, batch claims, heartbeat) is service/worker_runtime.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import logging.config
import os
import random
import socket
import sys
import time
import traceback
from collections.abc import Coroutine
from typing import Any, Final

from arq.worker import Retry, RetryJob, func
from pydantic import ValidationError
from redis.exceptions import RedisError

from service import keys, lifecycle
from service.backfill import PoisonBackfillError, backoff_s, run_backfill
from service.dlq import add_park
from service.jsonlog import log_config
from service.settings import Settings
from service.worker_runtime import (
    GracefulWorker,
    WorkerState,
    claim_s,
    on_shutdown,
    on_startup,
    redis_settings,
)

ARQ_MAX_TRIES: Final = 1_000_000  # arq must never end a job itself: our wrapper parks it first
log = logging.getLogger("service.worker")


async def _end(
    redis: Any,
    job_id: str,
    source_id: str,
    index: int | None,
    attempt: dict[str, Any],
    state: str,
    ttl_s: int,
    counter: str | None,
    source_state: str | None = None,
    park: dict[str, Any] | None = None,
) -> None:
    # one transaction per transition: a parked record and the job's "dead" state appear together
    async with redis.pipeline(transaction=True) as pipe:
        lifecycle.add_end(pipe, job_id, source_id, index, attempt, state, ttl_s, counter, source_state)
        if park is not None:
            add_park(pipe, park)
        await pipe.execute()


async def _park(
    ctx: dict[str, Any],
    source_id: str,
    index: int | None,
    attempt: dict[str, Any],
    exc: BaseException,
) -> None:
    redis, st, job_id = ctx["redis"], ctx["ob"], ctx["job_id"]
    enqueued, redrives = await redis.hmget(keys.job(job_id), ["enqueued_ts", "redrives"])
    record = {
        "job_id": job_id,
        "function": keys.JOB_FUNCTION,
        "source_id": source_id,
        "args": [source_id],
        "kwargs": {},
        "error_type": type(exc).__name__,
        "error": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
        "attempts": ctx["job_try"],
        "enqueued_ts": float(enqueued) if enqueued else ctx["enqueue_time"].timestamp(),
        "failed_ts": attempt["end_ts"],
        "redrives": int(redrives or 0),
    }
    await _end(
        redis,
        job_id,
        source_id,
        index,
        attempt,
        "dead",
        st.settings.record_ttl_s,
        "dead_lettered",
        "dead",
        record,
    )
    lifecycle.log_event(
        "dead-lettered",
        level=logging.WARNING,
        job_id=job_id,
        source_id=source_id,
        attempts=ctx["job_try"],
        error_type=record["error_type"],
        error=str(exc),
    )


async def _settle(write: Coroutine[Any, Any, None]) -> None:
    """Finish an outcome write even when the job is cancelled meanwhile (shutdown past its grace).

    The attempt's work is over; if a cancel aborted the write, arq would re-queue a job that is already
    done or parked and run it again. So the write completes, and the cancel is absorbed.
    """
    task = asyncio.ensure_future(write)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task


class TriesExhaustedError(Exception):
    """The job's tries were used up by attempts that never ended (cancelled at shutdown, worker crashes)."""


async def backfill_source(ctx: dict[str, Any], source_id: str) -> str:
    """The arq job: one backfill attempt with lifecycle records, back-off retries and the DLQ."""
    st: WorkerState = ctx["ob"]
    if st.hard_stop:
        raise RetryJob()  # arq re-queues it untouched: "cancelled, will be run again"
    cfg, redis, job_id, job_try = st.settings, ctx["redis"], ctx["job_id"], int(ctx["job_try"])
    ttl_s = cfg.record_ttl_s
    start_ts = time.time()
    try:
        async with redis.pipeline(transaction=False) as pipe:
            lifecycle.add_start(pipe, job_id, source_id, job_try, start_ts, ttl_s, claim_s(cfg))
            # the source's user_id/name ride along: run_backfill need not read them in a round trip of its own
            pipe.hmget(keys.source(source_id), ["user_id", "name"])
            replies = await pipe.execute()
        index = int(replies[0]) - 1
        user_id, name = (v.decode() if isinstance(v, bytes) else v for v in replies[-1])
    except (RedisError, OSError) as exc:
        # not recorded, not run: let arq re-queue it (its own finish may fail too; then the claim expires)
        raise Retry(defer=backoff_s(job_try, cfg.retry_base_s, cfg.retry_cap_s, st.rng)) from exc
    lifecycle.log_event("started", job_id=job_id, source_id=source_id, job_try=job_try)
    attempt: dict[str, Any] = {
        "try": job_try,
        "start_ts": start_ts,
        "end_ts": None,
        "outcome": None,
        "error": None,
    }
    try:
        if job_try > cfg.max_tries:
            exhausted = TriesExhaustedError(
                f"{job_try - 1} tries used (max_tries={cfg.max_tries}); "
                "earlier attempts were cancelled or their worker died"
            )
            attempt.update(end_ts=time.time(), outcome="dead", error=str(exhausted))
            await _settle(_park(ctx, source_id, index, attempt, exhausted))
            return "dead-lettered"
        try:
            # our own deadline, inside arq's (job_timeout_s + margin/2), so a timeout is recorded and retried
            async with asyncio.timeout(cfg.job_timeout_s):
                # a missing field (None) makes run_backfill re-read the record and raise SourceMissingError
                await run_backfill(
                    redis, source_id, cfg.work, job_try, ttl_s=ttl_s, user_id=user_id, name=name
                )
        except asyncio.CancelledError:
            attempt.update(end_ts=time.time(), outcome="cancelled", error="cancelled")
            with contextlib.suppress(RedisError, OSError):
                await asyncio.shield(
                    _end(redis, job_id, source_id, index, attempt, "pending", ttl_s, None, "pending")
                )
            raise
        except PoisonBackfillError as exc:
            attempt.update(end_ts=time.time(), outcome="dead", error=f"{type(exc).__name__}: {exc}")
            await _settle(_park(ctx, source_id, index, attempt, exc))
            return "dead-lettered"
        except Exception as exc:  # noqa: BLE001
            # Transient errors, upstream connection errors, our timeout, and also anything unknown: an
            # unknown error may be a flaky dependency, and a bug still ends in the DLQ with its traceback
            # after max_tries instead of being dropped on the first try (arq's default).
            attempt.update(end_ts=time.time(), error=f"{type(exc).__name__}: {exc}")
            if job_try >= cfg.max_tries:
                attempt["outcome"] = "dead"
                await _settle(_park(ctx, source_id, index, attempt, exc))
                return "dead-lettered"
            delay_s = backoff_s(job_try, cfg.retry_base_s, cfg.retry_cap_s, st.rng)
            attempt["outcome"] = "retry"
            await _settle(_end(redis, job_id, source_id, index, attempt, "pending", ttl_s, "retried"))
            lifecycle.log_event(
                "retrying",
                job_id=job_id,
                source_id=source_id,
                job_try=job_try,
                delay_s=round(delay_s, 4),
                error=attempt["error"],
            )
            raise Retry(defer=delay_s) from exc
        attempt.update(end_ts=time.time(), outcome="success")
        # the success record rides in arq's own finish transaction (GracefulWorker.finish_job): one round
        # trip less per job, and the record says "done" exactly when arq has removed the job from its queue
        st.finish_writes[job_id] = functools.partial(
            lifecycle.add_end,
            job_id=job_id,
            source_id=source_id,
            attempt_index=index,
            attempt=attempt,
            state="done",
            ttl_s=ttl_s,
            counter="completed",
        )
        lifecycle.log_event(
            "succeeded",
            job_id=job_id,
            source_id=source_id,
            job_try=job_try,
            duration_ms=round((attempt["end_ts"] - start_ts) * 1000, 3),
        )
        return "done"
    except (RedisError, OSError) as exc:
        # recording the outcome failed: run again later (the backfill is idempotent; the re-run is counted)
        log.warning(
            "redis error recording job", extra={"job_id": job_id, "error": f"{type(exc).__name__}: {exc}"}
        )
        raise Retry(defer=backoff_s(job_try, cfg.retry_base_s, cfg.retry_cap_s, st.rng)) from exc


def worker_kwargs(settings: Settings, state: WorkerState) -> dict[str, Any]:
    """Everything our Worker is built from (the WorkerSettings equivalent, as arq's keyword arguments)."""
    arq_timeout_s = settings.job_timeout_s + settings.orphan_margin_s / 2  # ours fires first, see wrapper
    return {
        "functions": [
            func(backfill_source, name=keys.JOB_FUNCTION, timeout=arq_timeout_s, max_tries=ARQ_MAX_TRIES)
        ],
        "redis_settings": redis_settings(settings),
        "max_jobs": settings.max_jobs,
        "poll_delay": settings.poll_delay_s,
        "job_timeout": arq_timeout_s,
        "max_tries": ARQ_MAX_TRIES,
        "keep_result": 0,  # nobody reads arq results; at 10k jobs they would only cost memory
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "ctx": {"ob": state},
        "handle_signals": True,
        "job_completion_wait": 0,  # our handle_sig does the waiting (arq's variant keeps claiming jobs)
        "health_check_interval": 60,
    }


def build_worker(settings: Settings) -> GracefulWorker:
    """A worker for these settings (call inside the thread that will run it)."""
    worker_id = f"{socket.gethostname()}-{os.getpid()}"
    state = WorkerState(settings, worker_id, random.Random(f"{settings.work.seed}:{worker_id}"))
    return GracefulWorker(state=state, **worker_kwargs(settings, state))


def main() -> int:
    """`python -m service.worker`: run one worker until SIGTERM/SIGINT; 0 on a clean stop."""
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"])
        where = f" {name}" if name else ""
        hint = f" (check OFFLOAD_{name.upper()})" if name else ""
        print(f"error: invalid worker setting{where}: {first['msg']}{hint}", file=sys.stderr)  # noqa: T201
        return 2
    logging.config.dictConfig(log_config(settings.log_level))
    # arq logs two prose lines per job; our started/succeeded events replace them on the hot path
    logging.getLogger("arq").setLevel(logging.WARNING)
    asyncio.set_event_loop(asyncio.new_event_loop())
    worker = build_worker(settings)
    # the objects alive now (modules, arq, pydantic) are never garbage: keep full collections off them
    gc.collect()
    gc.freeze()
    try:
        worker.run()
    except (RedisError, OSError) as exc:
        log.error("worker stopped: redis unavailable", extra={"error": f"{type(exc).__name__}: {exc}"})
        return 1
    finally:
        worker.loop.close()
    log.info("worker stopped", extra={"completed": worker.jobs_complete, "retried": worker.jobs_retried})
    return 0


if __name__ == "__main__":
    sys.exit(main())

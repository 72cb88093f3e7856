"""The arq worker: the backfill job wrapped with retries, a dead-letter queue, lifecycle records and a
graceful shutdown. `python -m service.worker` runs one worker process with settings from the environment.

What arq does not give and this module adds:
- arq retries only on `Retry`; every other exception ends a job, and when `job_try > max_tries` arq ends it
  without any hook. So arq gets a try limit it never reaches (ARQ_MAX_TRIES) and the wrapper enforces ours
  from ctx["job_try"] (which cancellations and crashes bump too): an attempt that may not run again parks
  the job in our DLQ and returns normally, so no path ends a job outside the DLQ.
- arq's SIGTERM handling cancels run_job tasks at arbitrary awaits (the CancelledError traceback, exit 1,
  in-progress keys left with a ~310 s TTL). GracefulWorker stops claiming jobs, lets running ones finish for
  shutdown_grace_s, then cancels only the job coroutines (arq re-queues those cleanly) and lets the main
  loop return on its own, so nothing is cancelled mid-Redis-call.
- arq's in-progress TTL is job timeout + 10 s (310 s by default); here it is job_timeout_s + orphan_margin_s.
- arq claims one job per 4 round trips in its single main loop; GracefulWorker claims a batch per script call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import logging.config
import os
import random
import signal
import socket
import sys
import time
import traceback
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Final

from arq.connections import RedisSettings
from arq.constants import in_progress_key_prefix
from arq.worker import Retry, RetryJob, Worker, func
from pydantic import ValidationError
from redis.asyncio.retry import Retry as RedisRetry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service import keys, lifecycle
from service.backfill import PoisonBackfillError, backoff_s, run_backfill
from service.dlq import add_park
from service.jsonlog import log_config
from service.settings import Settings

ARQ_MAX_TRIES: Final = 1_000_000  # arq must never end a job itself: our wrapper parks it first
HEARTBEAT_EVERY_S: Final = 1.0
HEARTBEAT_TTL_S: Final = 5

# Claim jobs the way arq's start_jobs does (still in the queue, due, not in progress elsewhere -> set the
# in-progress key with the claim TTL), for a batch of ids in one round trip. Returns {id, score} pairs.
CLAIM_LUA: Final = """
local now, ttl, prefix = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local out = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local score = redis.call('ZSCORE', KEYS[1], id)
  if score and tonumber(score) <= now and redis.call('EXISTS', prefix .. id) == 0 then
    redis.call('PSETEX', prefix .. id, ttl, '1')
    out[#out + 1] = {id, score}
  end
end
return out
"""

log = logging.getLogger("service.worker")


@dataclass
class WorkerState:
    """Per-process state the job wrapper reads from ctx["ob"]."""

    settings: Settings
    worker_id: str
    rng: random.Random
    hard_stop: bool = False  # the shutdown grace ended: jobs that have not started yet must not start


def claim_s(settings: Settings) -> float:
    """How long a claimed job stays claimed (arq's in-progress TTL): after SIGKILL it re-runs within this."""
    return settings.job_timeout_s + settings.orphan_margin_s


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
            index = int((await pipe.execute())[0]) - 1
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
                await run_backfill(redis, source_id, cfg.work, job_try, ttl_s=ttl_s)
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
        await _settle(_end(redis, job_id, source_id, index, attempt, "done", ttl_s, "completed"))
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


async def _heartbeat(redis: Any, worker_id: str) -> None:
    # SET ob:worker:<id> = now (short TTL) for /healthz; also drop expired claims from the RUNNING zset
    key = keys.WORKER_HEARTBEAT_PREFIX + worker_id
    while True:
        now_s = time.time()
        try:
            async with redis.pipeline(transaction=False) as pipe:
                pipe.set(key, f"{now_s:.3f}", ex=HEARTBEAT_TTL_S)
                pipe.zremrangebyscore(lifecycle.RUNNING, "-inf", int(now_s * 1000))
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("heartbeat failed", extra={"error": f"{type(exc).__name__}: {exc}"})
        await asyncio.sleep(HEARTBEAT_EVERY_S)


async def on_startup(ctx: dict[str, Any]) -> None:
    """Start the heartbeat."""
    st: WorkerState = ctx["ob"]
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
        await ctx["redis"].delete(keys.WORKER_HEARTBEAT_PREFIX + st.worker_id)


class GracefulWorker(Worker):
    """arq's Worker with a clean SIGTERM/SIGINT, a bounded orphan time and survival of Redis outages."""

    def __init__(self, *, state: WorkerState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state
        # arq sets this to job timeout + 10 s; after SIGKILL the job re-runs when the key expires
        self.in_progress_timeout_s = claim_s(state.settings)
        self._slot_free = asyncio.Event()
        self._drain_task: asyncio.Task[None] | None = None
        self._grace_deadline = 0.0
        self._outage_s = 0.0
        self._claim: Any = None

    def _release_sem_dec_counter_on_complete(self) -> None:
        super()._release_sem_dec_counter_on_complete()
        self._slot_free.set()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """Claim ready jobs in batches of free slots with one script call each, then start them.

        arq claims one job per WATCH/EXISTS/ZSCORE/MULTI sequence (4 round trips, in its single main loop),
        which caps a process near 1 / (4 RTT) jobs/s; the script does the same checks atomically per id.
        Waiting for a free slot here (not in arq's semaphore) lets a shutdown stop further claims.
        """
        pending = [j.decode() for j in job_ids]
        while pending:
            while self.job_counter >= self.max_jobs and self.allow_pick_jobs:
                self._slot_free.clear()
                await self._slot_free.wait()
            if not self.allow_pick_jobs:
                return
            batch, pending = (
                pending[: self.max_jobs - self.job_counter],
                pending[self.max_jobs - self.job_counter :],
            )
            if self._claim is None:
                self._claim = self.pool.register_script(CLAIM_LUA)
            claimed = await self._claim(
                keys=[self.queue_name],
                args=[
                    int(time.time() * 1000),
                    int(self.in_progress_timeout_s * 1000),
                    in_progress_key_prefix,
                    *batch,
                ],
            )
            for raw_id, raw_score in claimed:
                job_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
                await (
                    self.sem.acquire()
                )  # never blocks: job_counter < max_jobs < the semaphore's max_jobs + 1
                self.job_counter += 1
                task = self.loop.create_task(self.run_job(job_id, int(float(raw_score))))
                task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
                self.tasks[job_id] = task

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except (RedisError, OSError) as exc:
            # arq would crash the process on the first failed poll; wait for Redis to come back instead
            self._outage_s = min(max(self._outage_s * 2, 0.1), 2.0)
            log.warning(
                "redis unavailable, retrying",
                extra={"error": f"{type(exc).__name__}: {exc}", "retry_in_s": self._outage_s},
            )
            await asyncio.sleep(self._outage_s)
        else:
            self._outage_s = 0.0

    def _running(self) -> int:
        return sum(not t.done() for t in self.tasks.values())

    def handle_sig(self, signum: signal.Signals) -> None:
        """First signal: stop claiming, drain within the grace. A second one ends the grace now."""
        sig = signal.Signals(signum)
        if self._drain_task is not None:
            self._grace_deadline = 0.0
            log.info("second signal: cancelling running jobs now", extra={"signal": sig.name})
            return
        self.allow_pick_jobs = False
        # burst mode with a budget of 0 makes arq's main loop wait for its tasks and return by itself
        self.burst = True
        self.max_burst_jobs = 0
        self._slot_free.set()
        self._grace_deadline = time.monotonic() + self.state.settings.shutdown_grace_s
        log.info(
            "shutdown: draining",
            extra={
                "signal": sig.name,
                "running": self._running(),
                "grace_s": self.state.settings.shutdown_grace_s,
            },
        )
        self._drain_task = self.loop.create_task(self._drain())

    async def _drain(self) -> None:
        while self._running() and time.monotonic() < self._grace_deadline:
            await asyncio.sleep(0.02)
        if not self._running():
            log.info("shutdown: all jobs finished", extra={"completed": self.jobs_complete})
            return
        self.state.hard_stop = True
        log.warning(
            "shutdown: grace over, cancelling jobs (they will run again)", extra={"running": self._running()}
        )
        cancelled: set[str] = set()
        while self._running():
            # cancel the job coroutines, not arq's run_job tasks: run_job then re-queues them and clears
            # their in-progress keys; jobs that start later see hard_stop and re-queue themselves
            for job_id, task in list(self.job_tasks.items()):
                if job_id not in cancelled:
                    cancelled.add(job_id)
                    task.cancel()
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        """Let the drain task end (it logs the outcome) before arq closes the pool."""
        if self._drain_task is not None and not self._drain_task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain_task
        await super().close()


def redis_settings(settings: Settings) -> RedisSettings:
    """arq's connection settings: wait for Redis at start; retry commands over a short outage."""
    rs = RedisSettings.from_dsn(settings.redis_url)
    rs.conn_timeout = max(1, int(settings.redis_timeout_s + 0.999))
    rs.conn_retries = 30
    rs.conn_retry_delay = 1
    rs.retry_on_error = [RedisConnectionError, RedisTimeoutError]
    rs.retry = RedisRetry(ExponentialBackoff(cap=0.5, base=0.02), retries=4)
    return rs


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

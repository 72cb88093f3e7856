"""How a job's run ends on Redis: arq's finish with our lifecycle end, retried, and no stray task exception.

- A success's finish and its lifecycle record are one idempotent script (FINISH_DONE_LUA: a repeat only
  repeats the same writes; the "completed" counter counts the run that took the job out of the queue). It
  is retried with back-off within the job's claim, so a finished job is not left to its claim's expiry and
  run again because one round trip failed; it gives up only when the claim is nearly over or the shutdown
  grace has ended.
- arq's run_job lets a Redis error escape into its task (`Task exception was never retrieved`, or a crash of
  the main loop's sweep). Here it is caught and logged with its cause: before the job started, its claim is
  released (the job is claimed again at once, not after the claim's ~65 s); after, the job is left to its
  claim's expiry (a non-success finish is not idempotent).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any, Final

from arq.constants import (
    abort_jobs_ss,
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)
from arq.worker import Worker
from redis.exceptions import RedisError

from service import lifecycle
from service.parking import park_unrunnable
from service.worker_conn import LoopLateTimeoutError
from service.worker_state import WorkerState, claim_s

_COUNT = "if ARGV[8] ~= '' then redis.call('HINCRBY', KEYS[4], ARGV[8], 1) end"
assert _COUNT in lifecycle.END_LUA
# arq's finish of a job that ended with nothing to keep (in-progress, retry and payload keys deleted; out of
# the abort set and the queue) and its lifecycle end, as one script: one command instead of MULTI, five
# commands and EXEC. KEYS[1..5] and ARGV are lifecycle.END_LUA's (ARGV[9] is the job id), KEYS[6..10] arq's.
# Idempotent: the counter counts only the call that removed the job from the queue.
FINISH_DONE_LUA: Final = """
redis.call('DEL', KEYS[6], KEYS[7], KEYS[8])
redis.call('ZREM', KEYS[9], ARGV[9])
local fresh = redis.call('ZREM', KEYS[10], ARGV[9])
""" + lifecycle.END_LUA.replace(_COUNT, _COUNT.replace("~= ''", "~= '' and fresh == 1"))
FINISH_BACKOFF_S: Final = (0.05, 2.0)  # first and largest pause between tries of a finish (full jitter)

log = logging.getLogger("service.worker")


def cause(exc: BaseException) -> str:
    """Who a Redis error is on: the worker's own late loop, or Redis (or the network)."""
    return "worker loop late" if isinstance(exc, LoopLateTimeoutError) else "redis"


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class FinishingWorker(Worker):
    """arq's Worker whose finishes are retried within the claim and whose run_job never raises."""

    def __init__(self, *, state: WorkerState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state
        self.claimed_at: dict[str, float] = {}  # job id -> when its claim was set (monotonic)
        self._started: set[str] = set()
        self.on_job_start = self._mark_started

    async def _mark_started(self, ctx: dict[str, Any]) -> None:
        self._started.add(ctx["job_id"])

    def _claim_left_s(self, job_id: str) -> float:
        # keep two round trips of the claim for the last try
        at = self.claimed_at.get(job_id, time.monotonic())
        return at + claim_s(self.state.settings) - 2 * self.state.settings.redis_timeout_s - time.monotonic()

    async def _retried(self, job_id: str, what: str, call: Any) -> bool:
        """Run call() until it succeeds, within the claim; False when it gave up (logged)."""
        tries = 0
        while True:
            try:
                await call()
            except (RedisError, OSError) as exc:
                tries += 1
                pause = random.uniform(0, min(FINISH_BACKOFF_S[1], FINISH_BACKOFF_S[0] * 2**tries))
                extra = {"job_id": job_id, "try": tries, "error": _error(exc), "cause": cause(exc)}
                if self.state.hard_stop or self._claim_left_s(job_id) < pause:
                    log.error(f"{what} not recorded: the job is left to its claim's expiry", extra=extra)
                    return False
                log.warning(f"{what} failed, retrying", extra={**extra, "retry_in_s": round(pause, 3)})
                await asyncio.sleep(pause)
            else:
                if tries:
                    log.info(f"{what} recorded after retries", extra={"job_id": job_id, "tries": tries + 1})
                return True

    async def run_job(self, job_id: str, score: int) -> None:
        """arq's run_job, with its Redis errors handled here instead of escaping into the task."""
        try:
            await super().run_job(job_id, score)
        except (RedisError, OSError) as exc:
            self.state.finish_ends.pop(job_id, None)
            extra = {"job_id": job_id, "error": _error(exc), "cause": cause(exc)}
            if job_id in self._started:
                log.error("job's end not recorded: left to its claim's expiry", extra=extra)
            else:
                log.warning("job not started (redis error): releasing its claim", extra=extra)

                async def release() -> None:
                    await self.pool.delete(in_progress_key_prefix + job_id)

                await self._retried(job_id, "claim release", release)
        finally:
            self.claimed_at.pop(job_id, None)
            self._started.discard(job_id)

    async def finish_job(
        self,
        job_id: str,
        finish: bool,
        result_data: bytes | None,
        result_timeout_s: float | None,
        keep_result_forever: bool,
        incr_score: int | None,
        keep_in_progress: float | None,
    ) -> None:
        """arq's finish plus the job's lifecycle end (a success), atomically, in one round trip.

        A finished job with no result to keep (our worker's case) is one script (FINISH_DONE_LUA), retried
        within the claim; any other finish is arq 0.28's Worker.finish_job transaction with the lifecycle end
        added to its MULTI/EXEC.
        """
        end = self.state.finish_ends.pop(job_id, None)
        if end is None:
            await super().finish_job(
                job_id,
                finish,
                result_data,
                result_timeout_s,
                keep_result_forever,
                incr_score,
                keep_in_progress,
            )
            return
        end_keys, end_argv = end
        in_progress_key = in_progress_key_prefix + job_id
        if finish and keep_in_progress is None and not result_data:
            arq_keys = [in_progress_key, retry_key_prefix + job_id, job_key_prefix + job_id]
            arq_keys += [abort_jobs_ss, self.queue_name]
            numkeys = len(end_keys) + len(arq_keys)

            async def finished() -> None:
                await self.pool.eval(FINISH_DONE_LUA, numkeys, *end_keys, *arq_keys, *end_argv)  # type: ignore[misc]

            await self._retried(job_id, "finish", finished)
            return
        async with self.pool.pipeline(transaction=True) as tr:
            delete_keys = []
            if keep_in_progress is None:
                delete_keys.append(in_progress_key)
            else:
                tr.pexpire(in_progress_key, int(keep_in_progress * 1000))
            if finish:
                if result_data:
                    expire_ms = None if keep_result_forever else int((result_timeout_s or 0) * 1000) or None
                    tr.set(result_key_prefix + job_id, result_data, px=expire_ms)
                delete_keys += [retry_key_prefix + job_id, job_key_prefix + job_id]
                tr.zrem(abort_jobs_ss, job_id)
                tr.zrem(self.queue_name, job_id)
            elif incr_score:
                tr.zincrby(self.queue_name, incr_score, job_id)
            if delete_keys:
                tr.delete(*delete_keys)
            tr.eval(lifecycle.END_LUA, len(end_keys), *end_keys, *end_argv)
            await tr.execute()

    async def finish_failed_job(self, job_id: str, result_data: bytes | None) -> None:
        """arq ends a job it cannot run (expired, undeserialisable, unknown function): park it in our DLQ."""
        await park_unrunnable(
            self.pool, job_id, result_data, self.queue_name, self.state.settings.record_ttl_s
        )

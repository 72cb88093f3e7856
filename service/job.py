"""The arq job: one backfill attempt with lifecycle records, back-off retries and the DLQ.

What arq does not give and this module adds:
- arq retries only on `Retry`; every other exception ends a job, and when `job_try > max_tries` arq ends it
  without any hook. So arq gets a try limit it never reaches (worker.ARQ_MAX_TRIES) and the job enforces ours
  from ctx["job_try"] (which cancellations and crashes bump too): an attempt that may not run again parks
  the job in our DLQ and returns normally, so no path ends a job outside the DLQ.
- arq's own timeout deletes a job (no retry). Ours starts at the job's start and fires at least half the
  validated orphan margin before arq's; a cancellation we did not ask for (arq's timeout, anything but our
  shutdown) becomes a retry.

One responsibility per function: `attempt.begin` records the start, `_run` runs the backfill under the
deadline and reports how it ended, `_conclude` turns that into done / retry / dead-lettered (the records each
outcome writes are service/attempt.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from typing import Any

from arq.worker import Retry, RetryJob
from redis.exceptions import RedisError

from service import lifecycle
from service.attempt import Attempt, begin, done_call, end, park
from service.backfill import PoisonBackfillError, backoff_s, run_backfill
from service.worker_finish import cause
from service.worker_state import WorkerState

log = logging.getLogger("service.worker")


class TriesExhaustedError(Exception):
    """The job's tries were used up by attempts that never ended (cancelled at shutdown, worker crashes)."""


class UnrequestedCancelError(Exception):
    """The attempt was cancelled, but not by our shutdown (e.g. arq's own timeout): it is retried."""


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


async def _run(att: Attempt, deadline: float) -> BaseException | None:
    """Run the backfill before the deadline (loop time); how it failed, None on success.

    Raises CancelledError only for a cancel our shutdown asked for (WorkerState.hard_stop), after
    recording the attempt as cancelled: arq then re-queues the job untouched.
    """
    cfg = att.st.settings
    try:
        async with asyncio.timeout_at(deadline):
            # a missing field (None) makes run_backfill re-read the record and raise SourceMissingError
            att.result = await run_backfill(
                att.ctx["redis"],
                att.source_id,
                cfg.work,
                att.job_try,
                ttl_s=cfg.record_ttl_s,
                user_id=att.source.get("user_id"),
                name=att.source.get("name"),
                marked=att.marked,
            )
    except asyncio.CancelledError:
        if not att.st.hard_stop:
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # handled here: the outcome write below must not see it again
            return UnrequestedCancelError("cancelled, not by our shutdown (arq's timeout?): retried")
        att.ended("cancelled", "cancelled")
        with contextlib.suppress(RedisError, OSError):
            await asyncio.shield(end(att, "pending", None, "pending"))
        raise
    except Exception as exc:  # noqa: BLE001 - every failure is an outcome: retried, then the DLQ
        return exc
    return None


def _fatal(att: Attempt, exc: BaseException) -> bool:
    # poison never succeeds; anything else is retried until our tries run out. An unknown error may be a
    # flaky dependency, and a bug still ends in the DLQ with its traceback after max_tries instead of being
    # dropped on the first try (arq's default).
    return (
        isinstance(exc, PoisonBackfillError | TriesExhaustedError) or att.job_try >= att.st.settings.max_tries
    )


async def _conclude(att: Attempt, error: BaseException | None) -> str:
    """Record how the attempt ended: "done", "dead-lettered", or raise Retry (with back-off)."""
    if error is None:
        att.ended("success")
        # the success record rides in arq's own finish transaction (GracefulWorker.finish_job): one round
        # trip less per job, and the record says "done" exactly when arq has removed the job from its queue
        att.st.finish_ends[att.job_id] = done_call(att)
        duration_ms = round((att.entry["end_ts"] - att.entry["start_ts"]) * 1000, 3)
        lifecycle.log_event(
            "succeeded",
            job_id=att.job_id,
            source_id=att.source_id,
            job_try=att.job_try,
            duration_ms=duration_ms,
        )
        return "done"
    described = error if isinstance(error, TriesExhaustedError) else f"{type(error).__name__}: {error}"
    if _fatal(att, error):
        att.ended("dead", str(described))
        await _settle(park(att, error))
        return "dead-lettered"
    att.ended("retry", str(described))
    delay_s = att.backoff_s()
    await _settle(end(att, "pending", "retried"))
    lifecycle.log_event(
        "retrying",
        job_id=att.job_id,
        source_id=att.source_id,
        job_try=att.job_try,
        delay_s=round(delay_s, 4),
        error=att.entry["error"],
        cause=cause(error) if isinstance(error, RedisError | OSError) else "job",
    )
    raise Retry(defer=delay_s) from error


async def backfill_source(ctx: dict[str, Any], source_id: str) -> str:
    """The arq job: one backfill attempt with lifecycle records, back-off retries and the DLQ."""
    st: WorkerState = ctx["ob"]
    if st.hard_stop:
        raise RetryJob()  # arq re-queues it untouched: "cancelled, will be run again"
    # our deadline counts from the job's start, as arq's does: it fires first by half the orphan margin
    deadline = asyncio.get_running_loop().time() + st.settings.job_timeout_s
    try:
        att = await begin(ctx, source_id, time.time())
    except (RedisError, OSError) as exc:
        # not recorded, not run: let arq re-queue it (its own finish may fail too; then the claim expires)
        cfg = st.settings
        delay_s = backoff_s(int(ctx["job_try"]), cfg.retry_base_s, cfg.retry_cap_s, st.rng)
        lifecycle.log_event(
            "retrying",
            level=logging.WARNING,
            job_id=ctx["job_id"],
            source_id=source_id,
            job_try=int(ctx["job_try"]),
            delay_s=round(delay_s, 4),
            error=f"start not recorded: {type(exc).__name__}: {exc}",
            cause=cause(exc),
        )
        raise Retry(defer=delay_s) from exc
    lifecycle.log_event("started", job_id=att.job_id, source_id=source_id, job_try=att.job_try)
    try:
        if att.job_try > st.settings.max_tries:
            error: BaseException | None = TriesExhaustedError(
                f"{att.job_try - 1} tries used (max_tries={st.settings.max_tries}); "
                "earlier attempts were cancelled or their worker died"
            )
        else:
            error = await _run(att, deadline)
        return await _conclude(att, error)
    except (RedisError, OSError) as exc:
        # recording the outcome failed: run again later (the backfill is idempotent; the re-run is counted)
        log.warning(
            "redis error recording job",
            extra={"job_id": att.job_id, "error": f"{type(exc).__name__}: {exc}", "cause": cause(exc)},
        )
        raise Retry(defer=att.backoff_s()) from exc

"""The arq job: one backfill attempt with lifecycle records, back-off retries and the DLQ.

What arq does not give and this module adds:
- arq retries only on `Retry`; every other exception ends a job, and when `job_try > max_tries` arq ends it
  without any hook. So arq gets a try limit it never reaches (worker.ARQ_MAX_TRIES) and the job enforces ours
  from ctx["job_try"] (which cancellations and crashes bump too): an attempt that may not run again parks
  the job in our DLQ and returns normally, so no path ends a job outside the DLQ.
- arq's own timeout deletes a job (no retry). Ours starts at the job's start and fires at least half the
  validated orphan margin before arq's; a cancellation we did not ask for (arq's timeout, anything but our
  shutdown) becomes a retry.

One responsibility per function: `_begin` records the start, `_run` runs the backfill under the deadline and
reports how it ended, `_conclude` turns that into done / retry / dead-lettered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Final

from arq.constants import job_key_prefix
from arq.worker import Retry, RetryJob
from redis.exceptions import RedisError

from service import keys, lifecycle
from service.backfill import (
    BackfillResult,
    PoisonBackfillError,
    backoff_s,
    done_fields,
    run_backfill,
    running_fields,
)
from service.dlq import add_park
from service.worker_state import WorkerState, claim_s

log = logging.getLogger("service.worker")

# The source as the attempt starts (returned, a snapshot for run_backfill and the DLQ record), marked
# "running" in the same step when it is complete (user_id and name): one round trip instead of two.
# KEYS: the source, arq's payload. ARGV: ttl_s, then field, value, ... An incomplete or missing source is
# left as it is (run_backfill raises SourceMissingError without writing it). A payload enqueued with arq's
# 24 h expiry (arq's enqueue_job, older versions) must not expire while the job is live (retries, outages):
# its TTL is dropped; arq deletes the key when the job ends.
START_SOURCE_LUA: Final = """
redis.call('PERSIST', KEYS[2])
local before = redis.call('HGETALL', KEYS[1])
if redis.call('HEXISTS', KEYS[1], 'user_id') == 1 and redis.call('HEXISTS', KEYS[1], 'name') == 1 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 2))
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return before
"""


class TriesExhaustedError(Exception):
    """The job's tries were used up by attempts that never ended (cancelled at shutdown, worker crashes)."""


class UnrequestedCancelError(Exception):
    """The attempt was cancelled, but not by our shutdown (e.g. arq's own timeout): it is retried."""


@dataclass
class Attempt:
    """One run of the job: who it is and its lifecycle entry (written at the start, completed at the end)."""

    ctx: dict[str, Any]
    source_id: str
    index: int  # position of this attempt's entry in the job's attempts list
    source: dict[str, str]  # the source hash as the attempt started ({} when it is gone)
    entry: dict[str, Any] = field(default_factory=dict)
    result: BackfillResult | None = None  # set by a successful run

    @property
    def marked(self) -> bool:
        """START_SOURCE_LUA marked the source running (it was complete)."""
        return "user_id" in self.source and "name" in self.source

    @property
    def st(self) -> WorkerState:
        """The worker's per-process state."""
        state: WorkerState = self.ctx["ob"]
        return state

    @property
    def job_id(self) -> str:
        """arq's job id."""
        return str(self.ctx["job_id"])

    @property
    def job_try(self) -> int:
        """arq's try counter (cancellations and crashes bump it too)."""
        return int(self.ctx["job_try"])

    def backoff_s(self) -> float:
        """The back-off before the next try (full jitter)."""
        cfg = self.st.settings
        return backoff_s(self.job_try, cfg.retry_base_s, cfg.retry_cap_s, self.st.rng)

    def ended(self, outcome: str, error: str | None = None) -> None:
        """Stamp the entry's end."""
        self.entry.update(end_ts=time.time(), outcome=outcome, error=error)


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


async def _end(
    att: Attempt,
    state: str,
    counter: str | None,
    source_state: str | None = None,
    park: dict[str, Any] | None = None,
) -> None:
    # one transaction per transition: a parked record and the job's "dead" state appear together
    ttl_s = att.st.settings.record_ttl_s
    async with att.ctx["redis"].pipeline(transaction=True) as pipe:
        lifecycle.add_end(
            pipe, att.job_id, att.source_id, att.index, att.entry, state, ttl_s, counter, source_state
        )
        if park is not None:
            add_park(pipe, park)
        await pipe.execute()


async def _park(att: Attempt, exc: BaseException) -> None:
    redis, job_id = att.ctx["redis"], att.job_id
    enqueued, redrives = await redis.hmget(keys.job(job_id), ["enqueued_ts", "redrives"])
    record = {
        "job_id": job_id,
        "function": keys.JOB_FUNCTION,
        "source_id": att.source_id,
        "args": [att.source_id],
        "kwargs": {},
        "error_type": type(exc).__name__,
        "error": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
        "attempts": att.job_try,
        "enqueued_ts": float(enqueued) if enqueued else att.ctx["enqueue_time"].timestamp(),
        "failed_ts": att.entry["end_ts"],
        "redrives": int(redrives or 0),
        "source": att.source or None,  # a redrive restores the source from this when its TTL ran out
    }
    await _end(att, "dead", "dead_lettered", "dead", record)
    lifecycle.log_event(
        "dead-lettered",
        level=logging.WARNING,
        job_id=job_id,
        source_id=att.source_id,
        attempts=att.job_try,
        error_type=record["error_type"],
        error=str(exc),
    )


async def _begin(ctx: dict[str, Any], source_id: str, start_ts: float) -> Attempt:
    """Record the attempt's start, read the source and mark it running, all in one round trip."""
    st: WorkerState = ctx["ob"]
    cfg, redis, job_id, job_try = st.settings, ctx["redis"], ctx["job_id"], int(ctx["job_try"])
    async with redis.pipeline(transaction=False) as pipe:
        lifecycle.add_start(pipe, job_id, source_id, job_try, start_ts, cfg.record_ttl_s, claim_s(cfg))
        # the whole source rides along: run_backfill needs user_id/name, the DLQ record a snapshot of it
        # (EVAL, not a registered script: redis-py would add a SCRIPT EXISTS round trip to every execute)
        pipe.eval(
            START_SOURCE_LUA,
            2,
            keys.source(source_id),
            job_key_prefix + job_id,
            cfg.record_ttl_s,
            *_flat(running_fields(job_try)),
        )
        replies = await pipe.execute()
    flat = [_text(v) for v in replies[-1]]
    source = dict(zip(flat[::2], flat[1::2], strict=True))
    entry = {"try": job_try, "start_ts": start_ts, "end_ts": None, "outcome": None, "error": None}
    return Attempt(ctx, source_id, int(replies[0]) - 1, source, entry)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _flat(fields: dict[str, str | int | float]) -> list[str | int | float]:
    return [item for pair in fields.items() for item in pair]


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
            await asyncio.shield(_end(att, "pending", None, "pending"))
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


def _done_call(att: Attempt) -> tuple[list[str], list[str]]:
    """A success's end (lifecycle.END_LUA's KEYS/ARGV): the record "done" and, when the attempt marked it,
    the source's "done" fields (else run_backfill wrote them)."""
    source = done_fields(att.result) if att.marked and att.result is not None else None
    ttl_s = att.st.settings.record_ttl_s
    return lifecycle.end_call(
        att.job_id, att.source_id, att.index, att.entry, "done", ttl_s, "completed", source_fields=source
    )


async def _conclude(att: Attempt, error: BaseException | None) -> str:
    """Record how the attempt ended: "done", "dead-lettered", or raise Retry (with back-off)."""
    if error is None:
        att.ended("success")
        # the success record rides in arq's own finish transaction (GracefulWorker.finish_job): one round
        # trip less per job, and the record says "done" exactly when arq has removed the job from its queue
        att.st.finish_ends[att.job_id] = _done_call(att)
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
        await _settle(_park(att, error))
        return "dead-lettered"
    att.ended("retry", str(described))
    delay_s = att.backoff_s()
    await _settle(_end(att, "pending", "retried"))
    lifecycle.log_event(
        "retrying",
        job_id=att.job_id,
        source_id=att.source_id,
        job_try=att.job_try,
        delay_s=round(delay_s, 4),
        error=att.entry["error"],
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
        att = await _begin(ctx, source_id, time.time())
    except (RedisError, OSError) as exc:
        # not recorded, not run: let arq re-queue it (its own finish may fail too; then the claim expires)
        cfg = st.settings
        raise Retry(defer=backoff_s(int(ctx["job_try"]), cfg.retry_base_s, cfg.retry_cap_s, st.rng)) from exc
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
            "redis error recording job", extra={"job_id": att.job_id, "error": f"{type(exc).__name__}: {exc}"}
        )
        raise Retry(defer=att.backoff_s()) from exc

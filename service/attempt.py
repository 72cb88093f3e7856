"""One attempt of the backfill job and its Redis records: its start, its end, parking it in the DLQ.

Every transition is one round trip: the start records the attempt, reads the source and marks it running;
an end writes the attempt's outcome (with the DLQ record when it is parked); a success's end is handed to
arq's finish (GracefulWorker.finish_job) so the record says "done" exactly when arq removes the job.
The job's control flow around these (deadline, retries, the DLQ decision) is service/job.py.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Final

from arq.constants import job_key_prefix

from service import keys, lifecycle
from service.backfill import BackfillResult, backoff_s, done_fields, running_fields
from service.dlq import add_park
from service.worker_state import WorkerState, claim_s

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


async def begin(ctx: dict[str, Any], source_id: str, start_ts: float) -> Attempt:
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
            *lifecycle.flat(running_fields(job_try)),
        )
        replies = await pipe.execute()
    flat = [keys.text(v) for v in replies[-1]]
    source = dict(zip(flat[::2], flat[1::2], strict=True))
    return Attempt(ctx, source_id, int(replies[0]) - 1, source, lifecycle.start_entry(job_try, start_ts))


async def end(
    att: Attempt,
    state: str,
    counter: str | None,
    source_state: str | None = None,
    park: dict[str, Any] | None = None,
) -> None:
    """Record the attempt's end: its outcome, the job's state, a counter, the source's state, a DLQ record."""
    # one transaction per transition: a parked record and the job's "dead" state appear together
    ttl_s = att.st.settings.record_ttl_s
    async with att.ctx["redis"].pipeline(transaction=True) as pipe:
        lifecycle.add_end(
            pipe, att.job_id, att.source_id, att.index, att.entry, state, ttl_s, counter, source_state
        )
        if park is not None:
            add_park(pipe, park)
        await pipe.execute()


async def park(att: Attempt, exc: BaseException) -> None:
    """Park the job in the DLQ with what a redrive needs (its source included), and log it."""
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
    await end(att, "dead", "dead_lettered", "dead", record)
    lifecycle.log_event(
        "dead-lettered",
        level=logging.WARNING,
        job_id=job_id,
        source_id=att.source_id,
        attempts=att.job_try,
        error_type=record["error_type"],
        error=str(exc),
    )


def done_call(att: Attempt) -> tuple[list[str], list[str]]:
    """A success's end (lifecycle.END_LUA's KEYS/ARGV): the record "done" and, when the attempt marked it,
    the source's "done" fields (else run_backfill wrote them)."""
    source = done_fields(att.result) if att.marked and att.result is not None else None
    ttl_s = att.st.settings.record_ttl_s
    return lifecycle.end_call(
        att.job_id, att.source_id, att.index, att.entry, "done", ttl_s, "completed", source_fields=source
    )

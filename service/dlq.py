"""The dead-letter queue: durable records of jobs that will not be retried, and their redrive.

Records live in Redis (keys.DLQ hash job_id -> JSON, keys.DLQ_INDEX zset by failure time in ms), so they
survive worker and (with AOF) Redis restarts. The functions take a redis.asyncio client: the worker and the
admin API are async; the CLI runs them with asyncio.run.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Final

from arq.constants import in_progress_key_prefix, result_key_prefix
from redis.asyncio import Redis

from service import keys
from service.enqueue import enqueue_redrive
from service.lifecycle import log_event

RECORD_KEYS: Final = (
    "job_id",
    "function",
    "source_id",
    "args",
    "kwargs",
    "error_type",
    "error",
    "traceback",
    "attempts",
    "enqueued_ts",
    "failed_ts",
    "redrives",
    "payload_b64",  # arq's raw payload when arq could not run the job (parking.py), else None
)
TRACEBACK_MAX_CHARS: Final = 8_000  # a record must stay small: tracebacks of deep stacks are cut from the top
FINISH_WAIT_S: Final = 2.0  # arq clears its in-progress key just after our wrapper parks the job


class DlqError(Exception):
    """A DLQ operation that cannot be done (unknown id, job still finishing)."""


def add_park(pipe: Any, record: dict[str, Any]) -> None:
    """Queue the writes that park one record (call inside the worker's transaction)."""
    rec = {k: record.get(k) for k in RECORD_KEYS}
    tb = rec.get("traceback") or ""
    if len(tb) > TRACEBACK_MAX_CHARS:
        rec["traceback"] = "...\n" + tb[-TRACEBACK_MAX_CHARS:]
    pipe.hset(keys.DLQ, rec["job_id"], json.dumps(rec, separators=(",", ":")))
    pipe.zadd(keys.DLQ_INDEX, {rec["job_id"]: int(float(rec["failed_ts"] or 0) * 1000)})


async def count(client: Redis) -> int:
    """Records in the DLQ."""
    return int(await client.hlen(keys.DLQ))  # type: ignore[misc]  # redis-py types async and sync alike


async def list_records(client: Redis, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    """Records, most recent failure first."""
    ids = await client.zrevrange(keys.DLQ_INDEX, offset, offset + limit - 1)
    if not ids:
        return []
    raws = await client.hmget(keys.DLQ, ids)  # type: ignore[misc]  # redis-py typing
    return [json.loads(raw) for raw in raws if raw is not None]


async def show(client: Redis, job_id: str) -> dict[str, Any] | None:
    """One record, or None."""
    raw = await client.hget(keys.DLQ, job_id)  # type: ignore[misc]  # redis-py typing
    return None if raw is None else dict(json.loads(raw))


async def _wait_finished(client: Redis, job_id: str) -> None:
    # The worker parks a job from inside its last attempt; arq then runs finish_job, which deletes the job key
    # and removes the id from the queue. A redrive before that would be undone by it, so wait it out.
    deadline = time.monotonic() + FINISH_WAIT_S
    while await client.exists(in_progress_key_prefix + job_id):
        if time.monotonic() > deadline:
            raise DlqError(f"job {job_id} is still finishing its last attempt (retry in a moment)")
        await asyncio.sleep(0.05)


async def redrive(client: Redis, job_id: str, record_ttl_s: int = 86_400) -> dict[str, Any]:
    """Re-enqueue a record's original payload under the same job id with fresh tries; remove it from the DLQ.

    Keeping the job id lets analysis join the original 202 to the final outcome. arq's result key is deleted
    and the enqueue script deletes its retry counter, so arq's dedupe admits the id again at try 1. The job
    is enqueued before its record leaves the DLQ: a crash in between leaves a stale record, never a lost job.
    """
    rec = await show(client, job_id)
    if rec is None:
        raise DlqError(f"job {job_id} is not in the dead-letter queue")
    await _wait_finished(client, job_id)
    source_id = str(rec.get("source_id") or "")
    await client.delete(result_key_prefix + job_id)
    res = await enqueue_redrive(
        client,
        source_id=source_id,
        job_id=job_id,
        now_ms=int(time.time() * 1000),
        record_ttl_s=record_ttl_s,
        source_fields={"state": "pending"} if source_id else None,
    )
    async with client.pipeline(transaction=True) as pipe:
        pipe.hdel(keys.DLQ, job_id)
        pipe.zrem(keys.DLQ_INDEX, job_id)
        await pipe.execute()
    if res.outcome == "duplicate":
        # the id is live in arq already (a previous redrive got as far as the enqueue): drop the stale record
        log_event("redrive-skipped", job_id=job_id, source_id=source_id, reason="already queued")
        return {**rec, "already_queued": True}
    redrives = int(rec.get("redrives") or 0) + 1
    log_event("redriven", job_id=job_id, source_id=source_id, redrives=redrives)
    return {**rec, "redrives": redrives}


async def redrive_all(client: Redis, record_ttl_s: int = 86_400) -> tuple[int, list[str]]:
    """Redrive every record; returns (redriven count, ids skipped because they were still finishing)."""
    done, skipped = 0, []
    cursor_ids = await client.zrange(keys.DLQ_INDEX, 0, -1)
    for raw_id in cursor_ids:
        job_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
        try:
            await redrive(client, job_id, record_ttl_s)
            done += 1
        except DlqError:
            skipped.append(job_id)
    return done, skipped


async def purge(client: Redis) -> int:
    """Delete every record; returns how many there were."""
    async with client.pipeline(transaction=True) as pipe:
        pipe.hlen(keys.DLQ)
        pipe.delete(keys.DLQ, keys.DLQ_INDEX)
        n, _ = await pipe.execute()
    return int(n)

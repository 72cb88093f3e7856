"""The dead-letter queue: durable records of jobs that will not be retried, and their redrive.

Records live in Redis (keys.DLQ hash job_id -> JSON, keys.DLQ_INDEX zset by failure time in ms), so they
survive worker and (with AOF) Redis restarts. The functions take a redis.asyncio client: the worker and the
admin API are async; the CLI runs them with asyncio.run.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any, Final

from arq.constants import (
    default_queue_name,
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from service import keys
from service.enqueue import job_bytes
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
    "source",  # the source hash at failure time: a redrive restores it when its TTL ran out meanwhile
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


# One script, so a redrive is one atomic step: check the record is the one we read and arq has finished the
# parking attempt, take the record out, and enqueue the job (restoring the source from the record's snapshot
# when its hash expired). A re-failure can only park a new record after it, never be deleted by it.
# KEYS: 1 DLQ  2 DLQ index  3 arq:job:<id>  4 arq:result:<id>  5 arq:queue  6 source hash  7 job record
#       8 stats  9 arq:retry:<id>  10 arq:in-progress:<id>
# ARGV: 1 job id  2 the record as read  3 payload  4 score ms  5 record ttl s  6 now (epoch s)  7 source id
#       8.. source snapshot field/value pairs (written only when the source hash is gone)
_REDRIVE: Final = """
local rec = redis.call('HGET', KEYS[1], ARGV[1])
if not rec then return 'missing' end
if rec ~= ARGV[2] then return 'changed' end
if redis.call('EXISTS', KEYS[10]) == 1 then return 'busy' end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[4])
if redis.call('EXISTS', KEYS[3]) == 1 then return 'duplicate' end
redis.call('DEL', KEYS[9])
redis.call('SET', KEYS[3], ARGV[3])
redis.call('ZADD', KEYS[5], ARGV[4], ARGV[1])
local ttl = tonumber(ARGV[5])
if ARGV[7] ~= '' then
  if #ARGV > 7 and redis.call('EXISTS', KEYS[6]) == 0 then
    redis.call('HSET', KEYS[6], unpack(ARGV, 8))
  end
  redis.call('HSET', KEYS[6], 'state', 'pending')
  redis.call('EXPIRE', KEYS[6], ttl)
end
redis.call('HSET', KEYS[7], 'source_id', ARGV[7], 'state', 'pending', 'redrive_ts', ARGV[6])
redis.call('HINCRBY', KEYS[7], 'redrives', 1)
redis.call('EXPIRE', KEYS[7], ttl)
redis.call('HINCRBY', KEYS[8], 'redriven', 1)
return 'enqueued'
"""
_redrive_script: AsyncScript | None = None


def _payload(rec: dict[str, Any], now_ms: int) -> bytes:
    # a job arq could not run keeps its raw payload (foreign function, undeserialisable): put it back as is;
    # ours is rebuilt at try 1 from the source id
    if rec.get("function", keys.JOB_FUNCTION) != keys.JOB_FUNCTION and rec.get("payload_b64"):
        return base64.b64decode(rec["payload_b64"])
    return job_bytes(str(rec.get("source_id") or ""), now_ms)


async def _redrive_once(client: Redis, job_id: str, raw: bytes | str, record_ttl_s: int) -> str:
    global _redrive_script
    if _redrive_script is None:
        _redrive_script = client.register_script(_REDRIVE)
    rec = json.loads(raw)
    source_id = str(rec.get("source_id") or "")
    now_ms = int(time.time() * 1000)
    argv: list[Any] = [
        job_id,
        raw,
        _payload(rec, now_ms),
        now_ms,
        record_ttl_s,
        f"{now_ms / 1000:.3f}",
        source_id,
    ]
    for name, value in (rec.get("source") or {}).items():
        argv += [name, value]
    key_list = [
        keys.DLQ,
        keys.DLQ_INDEX,
        job_key_prefix + job_id,
        result_key_prefix + job_id,
        default_queue_name,
        keys.source(source_id),
        keys.job(job_id),
        keys.STATS,
        retry_key_prefix + job_id,
        in_progress_key_prefix + job_id,
    ]
    reply = await _redrive_script(keys=key_list, args=argv, client=client)
    return reply.decode() if isinstance(reply, bytes) else str(reply)


async def redrive(client: Redis, job_id: str, record_ttl_s: int = 86_400) -> dict[str, Any]:
    """Re-enqueue a record's job under the same job id with fresh tries and remove it from the DLQ, atomically.

    Keeping the job id lets analysis join the original 202 to the final outcome. The worker parks a job from
    inside its last attempt and arq then finishes it (deletes the payload, drops the id from the queue); a
    redrive before that would be undone, so it waits up to FINISH_WAIT_S for arq's in-progress key to go.
    """
    deadline = time.monotonic() + FINISH_WAIT_S
    while True:
        raw = await client.hget(keys.DLQ, job_id)  # type: ignore[misc]  # redis-py typing
        if raw is None:
            raise DlqError(f"job {job_id} is not in the dead-letter queue")
        outcome = await _redrive_once(client, job_id, raw, record_ttl_s)
        if outcome not in ("busy", "changed"):
            break
        if time.monotonic() > deadline:
            raise DlqError(f"job {job_id} is still finishing its last attempt (retry in a moment)")
        await asyncio.sleep(0.05)
    rec = dict(json.loads(raw))
    source_id = str(rec.get("source_id") or "")
    if outcome == "missing":
        raise DlqError(f"job {job_id} is not in the dead-letter queue")
    if outcome == "duplicate":
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

"""One-round-trip, arq-compatible enqueue of a backfill job (a registered Lua script).

arq's own `enqueue_job` costs three round trips (WATCH, EXISTS, MULTI/PSETEX/ZADD/EXEC). The script below
does the same dedupe check and writes the same bytes (`arq.jobs.serialize_job`, pickle) but no expiry, so a
stock arq worker runs the job unchanged; it also writes our source record, the job's lifecycle record,
the stats counter and (optionally) the Idempotency-Key mapping, atomically.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from arq.constants import (
    default_queue_name,
    job_key_prefix,
    result_key_prefix,
)
from arq.jobs import serialize_job
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from service import keys
from service.sources import Idempotency

# KEYS: 1 arq:job:<id>  2 arq:result:<id>  3 arq:queue  4 source hash  5 job record  6 stats  7 idem key
# ARGV: 1 job bytes  2 (unused; was arq's expiry)  3 score ms  4 job id  5 record ttl s  6 now (epoch s)
#       7 source id  8 idem value (JSON)  9 idem ttl s  10 (unused)  11.. source field/values
# The payload is written WITHOUT arq's 24 h expiry: a queued or retrying job must never vanish silently (a
# long outage or long back-offs outlive it); arq deletes the key when the job ends, our DLQ keeps failures.
_SCRIPT: Final = """
if KEYS[7] ~= '' then
  local prior = redis.call('GET', KEYS[7])
  if prior then return {'idempotent', prior} end
end
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return {'duplicate', ''} end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
local ttl = tonumber(ARGV[5])
if #ARGV > 10 then
  redis.call('HSET', KEYS[4], unpack(ARGV, 11))
  redis.call('EXPIRE', KEYS[4], ttl)
end
redis.call('HSET', KEYS[5], 'source_id', ARGV[7], 'enqueued_ts', ARGV[6], 'state', 'pending',
           'executions', 0, 'redrives', 0)
redis.call('HINCRBY', KEYS[6], 'enqueued', 1)
redis.call('EXPIRE', KEYS[5], ttl)
if KEYS[7] ~= '' then
  redis.call('SET', KEYS[7], ARGV[8], 'EX', ARGV[9])
end
return {'enqueued', ''}
"""

Outcome = Literal["enqueued", "duplicate", "idempotent"]


@dataclass(frozen=True)
class EnqueueResult:
    """What the script did: enqueued; duplicate (the job id already exists); idempotent (key seen before)."""

    outcome: Outcome
    source_id: str
    job_id: str
    body_hash: str | None = None  # idempotent: the fingerprint the first request stored with the key


_script: AsyncScript | None = None


def _get_script(redis: Redis) -> AsyncScript:
    # the Script object only caches the SHA; it is called with client=redis and reloads itself (NOSCRIPT)
    # after a Redis restart, so one per process serves every client
    global _script
    if _script is None:
        _script = redis.register_script(_SCRIPT)
    return _script


def job_bytes(source_id: str, enqueue_time_ms: int, job_try: int | None = None) -> bytes:
    """The arq job payload, byte for byte what `ArqRedis.enqueue_job(JOB_FUNCTION, source_id)` writes."""
    args = (source_id,)
    return serialize_job(keys.JOB_FUNCTION, args, {}, job_try, enqueue_time_ms, serializer=pickle.dumps)


async def _run(
    redis: Redis,
    *,
    source_id: str,
    job_id: str,
    now_ms: int,
    source_fields: Mapping[str, str | int | float] | None,
    record_ttl_s: int,
    idem: Idempotency | None,
    idempotency_ttl_s: int,
    defer_ms: int,
) -> EnqueueResult:
    score_ms = now_ms + defer_ms
    idem_key = keys.idempotency(idem.key) if idem else ""
    idem_value = idem.value(source_id=source_id, job_id=job_id) if idem else ""
    argv: list[Any] = [
        job_bytes(source_id, now_ms),
        "",
        score_ms,
        job_id,
        record_ttl_s,
        f"{now_ms / 1000:.3f}",
        source_id,
        idem_value,
        idempotency_ttl_s,
        "",
    ]
    for field, value in (source_fields or {}).items():
        argv += [field, value]
    key_list = [
        job_key_prefix + job_id,
        result_key_prefix + job_id,
        default_queue_name,
        keys.source(source_id),
        keys.job(job_id),
        keys.STATS,
        idem_key,
    ]
    raw = await _get_script(redis)(keys=key_list, args=argv, client=redis)
    outcome = raw[0].decode() if isinstance(raw[0], bytes) else str(raw[0])
    if outcome == "idempotent":
        prior = json.loads(raw[1])
        return EnqueueResult(
            "idempotent", str(prior["source_id"]), str(prior["job_id"]), prior.get("body_hash")
        )
    if outcome not in ("enqueued", "duplicate"):  # pragma: no cover - the script returns only these
        raise RuntimeError(f"enqueue script returned {outcome!r}")
    return EnqueueResult(outcome, source_id, job_id)  # type: ignore[arg-type]


async def enqueue_backfill(
    redis: Redis,
    *,
    source_id: str,
    job_id: str,
    now_ms: int,
    source_fields: Mapping[str, str | int | float],
    record_ttl_s: int,
    idem: Idempotency | None = None,
    idempotency_ttl_s: int = 86_400,
    defer_ms: int = 0,
) -> EnqueueResult:
    """Create the source record and enqueue its backfill job in one Redis round trip (arq-compatible).

    `idem` is the request's scoped Idempotency-Key; when it was seen before, nothing is written and the first
    request's source and job ids and body fingerprint come back (outcome idempotent).
    """
    return await _run(
        redis,
        source_id=source_id,
        job_id=job_id,
        now_ms=now_ms,
        source_fields=source_fields,
        record_ttl_s=record_ttl_s,
        idem=idem,
        idempotency_ttl_s=idempotency_ttl_s,
        defer_ms=defer_ms,
    )

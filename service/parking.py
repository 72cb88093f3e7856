"""Jobs arq would fail before our job code runs (payload expired or evicted, payload undeserialisable, function
unknown): parked in our DLQ instead of vanishing, and a check that Redis will not evict our keys.

arq routes every such case through `Worker.finish_failed_job` (and logs a line): the job and its payload are
deleted and no hook sees it. GracefulWorker.finish_failed_job calls `park_unrunnable` instead, which keeps
what is known (our lifecycle record's source id, the raw payload) in a DLQ record.
"""

from __future__ import annotations

import base64
import logging
import time
from typing import Any, Final

from arq.constants import abort_jobs_ss, in_progress_key_prefix, job_key_prefix, retry_key_prefix
from arq.jobs import deserialize_result

from service import keys, lifecycle
from service.dlq import add_park

log = logging.getLogger("service.worker")

SAFE_POLICIES: Final = frozenset({"noeviction"})


class EvictionRiskError(Exception):
    """Redis may evict any key (allkeys-* policy): queued jobs could vanish without a trace."""


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


async def park_unrunnable(
    pool: Any, job_id: str, result_data: bytes | None, queue_name: str, record_ttl_s: int
) -> None:
    """Do arq's finish_failed_job (delete the job, drop it from the queue) and park it, in one transaction."""
    failure: Any = None
    if result_data is not None:
        try:  # bytes this process serialised a moment ago (arq's job_failed), not read from Redis
            failure = deserialize_result(result_data)
        except Exception:  # noqa: BLE001 - the record is written with what else is known
            failure = None
    async with pool.pipeline(transaction=False) as pipe:
        pipe.get(job_key_prefix + job_id)
        pipe.hmget(keys.job(job_id), ["source_id", "enqueued_ts", "redrives"])
        pipe.get(retry_key_prefix + job_id)
        payload, (source_raw, enqueued, redrives), tries = await pipe.execute()
    source_id = _text(source_raw)
    source = await pool.hgetall(keys.source(source_id)) if source_id is not None else {}
    function = getattr(failure, "function", "<unknown>")
    args = list(getattr(failure, "args", ()) or ())
    if function == "<unknown>" and source_id is not None:
        function, args = keys.JOB_FUNCTION, [source_id]  # our record knows whose job it was
    error = getattr(failure, "result", None)
    now_s = time.time()
    record = {
        "job_id": job_id,
        "function": function,
        "source_id": source_id,
        "args": args,
        "kwargs": dict(getattr(failure, "kwargs", {}) or {}),
        "error_type": type(error).__name__ if error is not None else "JobExecutionFailed",
        "error": str(error) if error is not None else "arq could not run the job",
        "traceback": "",
        "attempts": int(tries or 0),
        "enqueued_ts": float(enqueued) if enqueued else None,
        "failed_ts": now_s,
        "redrives": int(redrives or 0),
        "payload_b64": base64.b64encode(payload).decode() if payload is not None else None,
        "source": {_text(k): _text(v) for k, v in source.items()} or None,
    }
    async with pool.pipeline(transaction=True) as tr:
        tr.delete(retry_key_prefix + job_id, in_progress_key_prefix + job_id, job_key_prefix + job_id)
        tr.zrem(abort_jobs_ss, job_id)
        tr.zrem(queue_name, job_id)
        add_park(tr, record)
        if source_id is not None:
            end = {"end_ts": now_s}
            lifecycle.add_end(tr, job_id, source_id, None, end, "dead", record_ttl_s, "dead_lettered", "dead")
        else:
            tr.hincrby(keys.STATS, "dead_lettered", 1)
        await tr.execute()
    lifecycle.log_event(
        "dead-lettered",
        level=logging.WARNING,
        job_id=job_id,
        source_id=source_id,
        attempts=record["attempts"],
        error_type=record["error_type"],
        error=record["error"],
    )


async def check_eviction(redis: Any, allow: bool) -> None:
    """Refuse a Redis that may evict any key (allkeys-*); warn about volatile-* (it evicts keys with a TTL).

    Our job payloads carry no TTL, so volatile-* eviction can only drop lifecycle, source and idempotency
    records: a job whose source is gone ends in the DLQ with its request data. allkeys-* can drop the queue.
    """
    info = await redis.info("memory")
    policy = str(info.get("maxmemory_policy", "noeviction"))
    if int(info.get("maxmemory", 0) or 0) == 0 or policy in SAFE_POLICIES:
        return
    if policy.startswith("allkeys") and not allow:
        raise EvictionRiskError(
            f"redis has maxmemory-policy {policy}: it may evict queued jobs "
            "(set it to noeviction, or OFFLOAD_ALLOW_EVICTING_REDIS=true to run anyway)"
        )
    log.warning(
        "redis may evict keys",
        extra={"maxmemory_policy": policy, "maxmemory": info.get("maxmemory"), "hint": "use noeviction"},
    )

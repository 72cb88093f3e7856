"""Redis key layout of the service (ours; arq's own keys are arq:queue, arq:job:<id>, arq:in-progress:<id>, ...)."""

from __future__ import annotations

from typing import Final

PREFIX: Final = "ob"

JOB_FUNCTION: Final = "backfill_source"  # the arq function name; args: (source_id: str,)

STATS: Final = (
    f"{PREFIX}:stats"  # hash of counters: enqueued, completed, retried, dead_lettered, redriven, executions
)
DLQ: Final = f"{PREFIX}:dlq"  # hash job_id -> JSON dead-letter record
DLQ_INDEX: Final = f"{PREFIX}:dlq:index"  # zset job_id scored by failure time (ms)
WORKERS: Final = f"{PREFIX}:workers"  # zset worker id -> last heartbeat (epoch ms): read in O(log N), no SCAN
WORKERS_LAG: Final = f"{PREFIX}:workers:lag"  # hash worker id -> JSON loop lag of its last heartbeat
HEARTBEAT_TTL_S: Final = 5  # a worker whose last heartbeat is older is not counted (and is pruned)


def source(source_id: str) -> str:
    """Hash: user_id, name, created_ts, state, job_id, attempts, done_ts, result_digest, ..."""
    return f"{PREFIX}:source:{source_id}"


def source_data(source_id: str) -> str:
    """Hash: page number -> page digest (the backfilled data; keyed so a re-run writes the same fields)."""
    return f"{PREFIX}:source:{source_id}:data"


def idempotency(key: str) -> str:
    """String: JSON {source_id, job_id} of the first request that used this Idempotency-Key."""
    return f"{PREFIX}:idem:{key}"


def job(job_id: str) -> str:
    """Hash: the job's lifecycle record (source_id, enqueued_ts, state, executions, redrives, done_ts, dead_ts)."""
    return f"{PREFIX}:job:{job_id}"


def job_attempts(job_id: str) -> str:
    """List: one compact JSON object per attempt {try, start_ts, end_ts, outcome, error}."""
    return f"{PREFIX}:job:{job_id}:attempts"


def text(value: bytes | str) -> str:
    """A Redis reply as str (a pool without decode_responses returns bytes)."""
    return value.decode() if isinstance(value, bytes) else value

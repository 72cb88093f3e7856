"""Job lifecycle records (per attempt start/end/outcome), counters, queue depth, and lifecycle log events.

The worker writes these on its hot path, so every transition is one script call that callers add to their
pipeline (`add_start`, `add_end`); the readers (`export_records`, `queue_depth`) take a sync redis-py client
so they run from the CLI and from gevent-based Locust alike.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any, Final

import redis
from arq.constants import default_queue_name

from service import keys

# zset job_id -> expiry (epoch ms) of the job's claim: counts running jobs without SCANning arq:in-progress:*,
# and an entry left behind by a SIGKILLed worker stops counting when arq's in-progress key would expire.
RUNNING: Final = f"{keys.PREFIX}:running"

EXPORT_CHUNK: Final = 2_000

# The service's own job record (what export_records yields). The harness maps it onto its run-folder contract
# (loadtests/_jobside.py); the service imports nothing of that contract.
RECORD_KEYS: Final = (
    "job_id",
    "source_id",
    "enqueued_ts",
    "state",  # pending | running | done | dead | missing (no record)
    "attempts",  # [{try, start_ts, end_ts, outcome (success|retry|dead|cancelled|null), error}]
    "done_ts",
    "dead_ts",
    "redrives",
    "executions",
)

_log = logging.getLogger("service.lifecycle")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


# An attempt's start and end are each one EVAL (one command to pack and one reply to parse, not 7): the
# worker's CPU per job is mostly redis-py's per-command work (benchmarks/README.md). Same writes as the
# commands they replace; the end's LSET is pcall'd so a list that expired meanwhile does not stop the rest.
START_LUA: Final = """
local n = redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], 'source_id', ARGV[2], 'state', 'running', 'last_start_ts', ARGV[3])
redis.call('HINCRBY', KEYS[2], 'executions', 1)
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('HINCRBY', KEYS[3], 'executions', 1)
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[6])
return n
"""

END_LUA: Final = """
if ARGV[1] ~= '' then redis.pcall('LSET', KEYS[1], ARGV[1], ARGV[2]) end
local fields = {'state', ARGV[3]}
if ARGV[4] ~= '' then fields[3] = ARGV[4]; fields[4] = ARGV[5] end
redis.call('HSET', KEYS[2], unpack(fields))
redis.call('EXPIRE', KEYS[2], ARGV[6])
if ARGV[7] ~= '' then
  fields[2] = ARGV[7]
  redis.call('HSET', KEYS[3], unpack(fields))
end
if #ARGV > 9 then
  redis.call('HSET', KEYS[3], unpack(ARGV, 10))
  redis.call('EXPIRE', KEYS[3], ARGV[6])
end
if ARGV[8] ~= '' then redis.call('HINCRBY', KEYS[4], ARGV[8], 1) end
redis.call('ZREM', KEYS[5], ARGV[9])
return 1
"""


def flat(fields: dict[str, str | int | float]) -> list[str | int | float]:
    """A field -> value mapping as the flat field, value, ... list a script's ARGV takes."""
    return [item for pair in fields.items() for item in pair]


def start_entry(job_try: int, start_ts: float) -> dict[str, Any]:
    """An attempt's entry as its start records it (its end fills end_ts, outcome and error)."""
    return {"try": job_try, "start_ts": start_ts, "end_ts": None, "outcome": None, "error": None}


def add_start(
    pipe: Any, job_id: str, source_id: str, job_try: int, start_ts: float, ttl_s: int, claim_s: float
) -> None:
    """Queue the writes of an attempt's start (one EVAL); its reply is the attempts list's length.

    claim_s: how long the claim counts as running (arq's in-progress key TTL), see RUNNING.
    """
    entry = _dumps(start_entry(job_try, start_ts))
    pipe.eval(
        START_LUA,
        4,
        keys.job_attempts(job_id),
        keys.job(job_id),
        keys.STATS,
        RUNNING,
        entry,
        source_id,
        start_ts,
        ttl_s,
        int((start_ts + claim_s) * 1000),
        job_id,
    )


def end_call(
    job_id: str,
    source_id: str,
    attempt_index: int | None,
    attempt: dict[str, Any],
    state: str,
    ttl_s: int,
    counter: str | None,
    source_state: str | None = None,
    source_fields: dict[str, str | int | float] | None = None,
) -> tuple[list[str], list[str]]:
    """KEYS and ARGV of END_LUA for an attempt's end: the attempt entry, job state, a STATS counter, source state.

    The attempt entry is LSET by the index RPUSH returned (a concurrent duplicate run appends its own entry
    elsewhere). run_backfill and the worker mark the source running/pending/done; source_state covers what
    they cannot see (dead-lettered, cancelled). source_fields are HSET on the source too (its TTL refreshed).
    ARGV[9] is the job id (the worker's finish script, which embeds END_LUA, relies on it).
    """
    ts_field = f"{state}_ts" if state in ("done", "dead") else ""
    keys_ = [keys.job_attempts(job_id), keys.job(job_id), keys.source(source_id), keys.STATS, RUNNING]
    argv: list[str | int | float] = [
        "" if attempt_index is None else attempt_index,
        _dumps(attempt),
        state,
        ts_field,
        attempt["end_ts"] if ts_field else "",
        ttl_s,
        source_state or "",
        counter or "",
        job_id,
        *flat(source_fields or {}),
    ]
    return keys_, [str(a) for a in argv]  # str() of an int or float is what redis-py would send


def add_end(pipe: Any, *args: Any, **kwargs: Any) -> None:
    """Queue an attempt's end (one EVAL of END_LUA) on a pipeline; arguments as end_call's."""
    keys_, argv = end_call(*args, **kwargs)
    pipe.eval(END_LUA, len(keys_), *keys_, *argv)


def _num(value: bytes | None, kind: type[float] | type[int]) -> Any:
    if value is None:
        return None
    try:
        return kind(value.decode())
    except ValueError:
        return None


def _record(job_id: str, fields: dict[bytes, bytes], attempts_raw: list[bytes]) -> dict[str, Any]:
    attempts: list[dict[str, Any]] = []
    for raw in attempts_raw:
        try:
            attempts.append(json.loads(raw))
        except ValueError:  # a hand-edited or truncated entry must not break an export of 100k jobs
            continue
    if not fields and not attempts:
        state = "missing"
    else:
        state = fields.get(b"state", b"pending").decode()
    source = fields.get(b"source_id")
    return {
        "job_id": job_id,
        "source_id": source.decode() if source else None,
        "enqueued_ts": _num(fields.get(b"enqueued_ts"), float),
        "state": state,
        "attempts": attempts,
        "done_ts": _num(fields.get(b"done_ts"), float),
        "dead_ts": _num(fields.get(b"dead_ts"), float),
        "redrives": _num(fields.get(b"redrives"), int) or 0,
        "executions": _num(fields.get(b"executions"), int) or 0,
    }


def export_records(client: redis.Redis, job_ids: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Yield one RECORD_KEYS dict per job id (state "missing" when no record exists), pipelined in chunks."""
    chunk: list[str] = []

    def flush() -> Iterator[dict[str, Any]]:
        with client.pipeline(transaction=False) as pipe:
            for jid in chunk:
                pipe.hgetall(keys.job(jid))
                pipe.lrange(keys.job_attempts(jid), 0, -1)
            replies = pipe.execute()
        for i, jid in enumerate(chunk):
            yield _record(jid, replies[2 * i], replies[2 * i + 1])

    for job_id in job_ids:
        chunk.append(job_id)
        if len(chunk) >= EXPORT_CHUNK:
            yield from flush()
            chunk = []
    if chunk:
        yield from flush()


# In-process jobs (service/inprocess.py): each API process (owner) beats in the zset INPROCESS_OWNERS and
# holds the ids of its unfinished jobs in the set INPROCESS_OWNED + owner. An owner stays in the zset until it
# stops with nothing held, or until a live peer's sweep records its jobs as lost.
INPROCESS_OWNERS: Final = f"{keys.PREFIX}:inprocess:owners"
INPROCESS_OWNED: Final = f"{keys.PREFIX}:inprocess:"

# the jobs every owner holds, in one call (a few owners: the API processes of this Redis)
_INPROCESS_HELD_LUA: Final = """
local n = 0
for _, owner in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  n = n + redis.call('SCARD', ARGV[1] .. owner)
end
return n
"""


def queue_depth(client: redis.Redis, queue: str = default_queue_name) -> dict[str, int]:
    """Queue depth now: ready, deferred, in_progress, dlq, completed (QUEUE_COLUMNS minus ts); 1 round trip.

    arq keeps a running job in its queue zset with its old (past) score, so `ready` is the past-scored count
    minus the running ones; a retrying job gets a future score when its attempt ends, so it counts as deferred.
    In-process jobs are in no queue: every job an API process holds unfinished (answered, running or between
    tries), or a dead one held until a peer's sweep records it as lost, counts as in_progress, so a drain
    waits for them and for that sweep. (When both kinds run at once, an in-process job's claim in RUNNING may
    also be taken for an arq one's: in_progress is then over, never under.)
    """
    now_ms = int(time.time() * 1000)
    with client.pipeline(transaction=False) as pipe:
        pipe.zcount(queue, "-inf", now_ms)
        pipe.zcount(queue, f"({now_ms}", "+inf")
        pipe.zcount(RUNNING, f"({now_ms}", "+inf")
        pipe.hlen(keys.DLQ)
        pipe.hget(keys.STATS, "completed")
        pipe.eval(_INPROCESS_HELD_LUA, 1, INPROCESS_OWNERS, INPROCESS_OWNED)
        past, future, running, dlq, completed, held = pipe.execute()
    in_progress = min(int(running), int(past))
    return {
        "ready": int(past) - in_progress,
        "deferred": int(future),
        "in_progress": in_progress + int(held),
        "dlq": int(dlq),
        "completed": int(completed or 0),
    }


def live_workers(client: redis.Redis) -> int:
    """Workers whose heartbeat is fresh (one ZCOUNT on keys.WORKERS; no SCAN)."""
    now_ms = int(time.time() * 1000)
    return int(client.zcount(keys.WORKERS, now_ms - keys.HEARTBEAT_TTL_S * 1000, "+inf"))  # type: ignore[arg-type]


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one lifecycle event (started, succeeded, retrying, dead-lettered, redriven) as structured fields."""
    if _log.isEnabledFor(level):
        _log.log(level, event, extra=fields)

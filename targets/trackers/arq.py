"""The arq tracker: each job's fate from arq's own keys, read through arq's own deserialize functions.

A finished job leaves `arq:result:<id>` (for keep_result seconds); a queued one `arq:job:<id>` and a member of
the queue zset; a running one also `arq:in-progress:<id>`; `arq:retry:<id>` counts tries until it finishes.
A job in none of them either finished without a kept result (keep_result = 0, or it expired) or was lost. The
two leave the same trace, so a job is called lost only when results of this run's jobs are kept long enough
that its own would still be there; otherwise its fate is "unknown", said so, never counted as done.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

import redis
from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix, retry_key_prefix
from arq.jobs import DeserializationError, deserialize_job, deserialize_result

from targets.trackers.base import attempt, job_record

CHUNK: Final = 1_000
ERROR_CHARS: Final = 200
_SCAN_MATCH: Final = "arq:[ir][ne][-s]*"  # arq:in-progress:* and arq:result:* in one keyspace walk


class _Unknown:
    """Stands in for a class of the user's code that is not importable here (e.g. their exception type)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self.args!r}"


class _TolerantUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            return type(name, (_Unknown,), {"__module__": module})


def tolerant_loads(data: bytes) -> Any:
    """pickle.loads that survives classes of the worker's code we cannot import (a job's result or error)."""
    import io

    return _TolerantUnpickler(io.BytesIO(data)).load()


def _ts(value: Any) -> float | None:
    return value.timestamp() if value is not None else None


class ArqTracker:
    """Queue depth from the queue zset; job fates from result / job / in-progress / retry keys."""

    name = "arq"

    def __init__(self, client: redis.Redis, queue: str = "arq:queue") -> None:
        self.client = client
        self.queue = queue
        self.notes: list[str] = []
        self.counts: dict[str, int] = {}

    def depth(self) -> dict[str, int]:
        """ready / deferred from the queue zset, in_progress and completed (results kept) from key counts."""
        now_ms = int(time.time() * 1000)
        with self.client.pipeline(transaction=False) as pipe:
            pipe.zcount(self.queue, "-inf", now_ms)
            pipe.zcount(self.queue, f"({now_ms}", "+inf")
            past, future = pipe.execute()
        running = results = 0
        for key in self.client.scan_iter(match=_SCAN_MATCH, count=1000):
            if key.startswith(in_progress_key_prefix.encode()):
                running += 1
            elif key.startswith(result_key_prefix.encode()):
                results += 1
        # a running job keeps its (past) score in the zset: ready excludes it
        in_progress = min(running, int(past))
        return {
            "ready": int(past) - in_progress,
            "deferred": int(future),
            "in_progress": in_progress,
            "dlq": 0,  # arq has no dead-letter queue
            "completed": results,
        }

    def _fetch(self, ids: list[str]) -> list[Any]:
        with self.client.pipeline(transaction=False) as pipe:
            for jid in ids:
                pipe.get(result_key_prefix + jid)
                pipe.pttl(result_key_prefix + jid)
                pipe.get(job_key_prefix + jid)
                pipe.exists(in_progress_key_prefix + jid)
                pipe.zscore(self.queue, jid)
                pipe.get(retry_key_prefix + jid)
            replies: list[Any] = pipe.execute()
        return [replies[i : i + 6] for i in range(0, len(replies), 6)]

    def _classify(self, jid: str, reply: list[Any], now: float) -> tuple[dict[str, Any], float | None]:
        """(record, seconds its result is kept for when it has one) of one job from its keys."""
        raw_result, pttl, raw_job, in_progress, score, retry = reply
        tries = int(retry) if retry is not None else 0
        if raw_result is not None:
            try:
                res = deserialize_result(raw_result, deserializer=tolerant_loads)
            except DeserializationError:
                self.notes.append(f"result of job {jid} is not readable with pickle: fate unknown")
                return job_record(jid, "unknown"), None
            start, end = _ts(res.start_time), _ts(res.finish_time)
            outcome = "success" if res.success else "dead"
            error = None if res.success else repr(res.result)[:ERROR_CHARS]
            kept_s = None if pttl is None or pttl < 0 else (pttl / 1000 + (now - (end or now)))
            rec = job_record(
                jid,
                "done" if res.success else "dead",
                enqueued_ts=_ts(res.enqueue_time),
                attempts=[attempt(res.job_try, start, end, outcome, error)],
                done_ts=end if res.success else None,
                dead_ts=None if res.success else end,
                executions=res.job_try,
            )
            return rec, (float("inf") if pttl == -1 else kept_s)
        enqueued = None
        if raw_job is not None:
            try:
                enqueued = _ts(deserialize_job(raw_job, deserializer=tolerant_loads).enqueue_time)
            except DeserializationError:
                pass
        if in_progress:
            attempts = [attempt(tries, None, None, None, None)] if tries else []
            return job_record(jid, "running", enqueued_ts=enqueued, attempts=attempts, executions=tries), None
        if raw_job is not None or score is not None:
            return job_record(jid, "pending", enqueued_ts=enqueued, executions=tries), None
        return job_record(jid, "missing"), None

    def export(
        self, job_ids: Iterable[str], accepted_ts: Mapping[str, float], timeout_s: float = 0.0
    ) -> Iterator[dict[str, Any]]:
        """Records of job_ids; gone-without-trace jobs are missing (lost) or unknown, see the module doc."""
        records: list[dict[str, Any]] = []
        kept: list[float] = []
        ids = list(job_ids)
        now = time.time()
        for i in range(0, len(ids), CHUNK):
            chunk = ids[i : i + CHUNK]
            for jid, reply in zip(chunk, self._fetch(chunk), strict=True):
                rec, kept_s = self._classify(jid, reply, now)
                records.append(rec)
                if kept_s is not None:
                    kept.append(kept_s)
        gone = [r for r in records if r["state"] == "missing"]
        if gone:
            # the oldest a gone job's result could be: accepted at the run's first acceptance
            first = min((accepted_ts[r["job_id"]] for r in gone if r["job_id"] in accepted_ts), default=None)
            age_s = now - first if first is not None else float("inf")
            keep_s = min(kept) if kept else 0.0
            if keep_s <= age_s:
                why = (
                    "no job of this run left a result (keep_result = 0, or results expired)"
                    if not kept
                    else f"results are kept ~{keep_s:.0f} s, less than the {age_s:.0f} s since the first job"
                )
                for rec in gone:
                    rec["state"] = "unknown"
                self.notes.append(f"arq: the fate of {len(gone)} job(s) is unknown: {why}")
            else:
                shown = ", ".join(r["job_id"] for r in gone[:5])
                self.notes.append(
                    f"arq: {len(gone)} accepted job(s) are in none of arq's keys although results are kept "
                    f"~{keep_s:.0f} s: lost ({shown})"
                )
        for rec in records:
            self.counts[rec["state"]] = self.counts.get(rec["state"], 0) + 1
        yield from records

    def close(self) -> None:
        """Close the Redis client."""
        self.client.close()

"""The saq tracker: each job's fate from what SAQ itself stores in Redis, read with SAQ's own key names.

A job is the JSON `saq:job:<queue>:<key>` (SAQ's default serializer): `status` (new, queued, active, aborting,
aborted, failed, complete), `queued` / `started` / `completed` in ms since the epoch, `attempts`, `error` and,
when not SAQ's default, `ttl`. A retry sets `started` and `completed` back to 0, so only the last attempt is
timed. A finished job (complete, failed or aborted alike) is kept `ttl` seconds (default 600; 0 keeps it, -1
deletes it at once). The list `saq:<q>:queued` is the ready queue, `saq:<q>:active` the running jobs, the zset
`saq:<q>:incomplete` every unfinished job (score > 0: scheduled later, e.g. a retry with a delay).

A job whose record is gone either finished and expired (or was never kept: `ttl = -1`) or was lost: the two
leave the same trace, so a gone job is called lost only when this run's own records show SAQ keeps them longer
than the run has lasted; otherwise its fate is "unknown", said so with the setting that would tell (`ttl`).
Only one round trip per chunk of jobs (one MGET), never one per job.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

import redis
from redis import asyncio as aioredis
from saq.job import Job
from saq.queue.redis import RedisQueue

from targets.trackers.base import attempt, job_record

CHUNK: Final = 1_000
ERROR_CHARS: Final = 200
DEFAULT_TTL_S: Final = Job(function="").ttl  # SAQ's own default (600)
_PENDING: Final = ("new", "queued")
_RUNNING: Final = ("active", "aborting")  # aborting: asked to stop, not yet stopped


def _ts(ms: Any) -> float | None:
    """Seconds since the epoch of one of SAQ's ms fields (0 or absent: None)."""
    return ms / 1000 if isinstance(ms, int | float) and ms > 0 else None


def _error(text: Any) -> str | None:
    """The last line of a traceback (the exception itself), cut to ERROR_CHARS."""
    if not isinstance(text, str) or not text.strip():
        return None
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:ERROR_CHARS] if lines else None


def _kept_s(ttl: Any) -> float:
    """How long SAQ keeps a finished job of this ttl (0: forever, < 0: not at all)."""
    ttl = DEFAULT_TTL_S if not isinstance(ttl, int) else ttl
    if ttl == 0:
        return float("inf")
    return max(float(ttl), 0.0)


class SaqTracker:
    """Queue depth from SAQ's queued / active lists and incomplete zset; job fates from its job records."""

    name = "saq"

    def __init__(self, client: redis.Redis, queue: str = "default") -> None:
        self.client = client
        self.queue = queue
        self.notes: list[str] = []
        self.counts: dict[str, int] = {}
        # SAQ's own key names; the async client is never connected (it only lends the queue its names)
        self._names = RedisQueue(aioredis.Redis(), name=queue)
        self._prefix = self._names.job_id("")
        self._queued = self._names.namespace("queued")
        self._active = self._names.namespace("active")
        self._incomplete = self._names.namespace("incomplete")
        self._abort_prefix = Job(function="f", key="").abort_id  # "saq:abort:" + a job's key

    def depth(self) -> dict[str, int]:
        """ready (queued list), deferred (incomplete with a future score: scheduled, retries waiting),
        in_progress (active list, and jobs being aborted): one round trip, and a SCAN of SAQ's abort keys.
        SAQ keeps no registry of finished jobs: dlq, completed 0."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.llen(self._queued)
            pipe.zcount(self._incomplete, "(0", "+inf")
            pipe.llen(self._active)
            ready, later, active = (int(x) for x in pipe.execute())
        return {
            "ready": ready, "deferred": later, "in_progress": active + self._aborting(), "dlq": 0, "completed": 0,
        }  # fmt: skip

    def _aborting(self) -> int:
        """Jobs of this queue between an abort and their end: a sweep of a stuck job (a killed worker's) takes it
        out of every list, then waits up to 5 s before it re-queues it (retries left) or ends it "aborted"; only
        its abort key (`saq:abort:<job key>`, 5 s) shows it meanwhile, and a drain must not end on it."""
        keys = [k.decode() for k in self.client.scan_iter(match=self._abort_prefix + "*", count=1000)]
        if not keys:
            return 0
        with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.exists(self._prefix + key[len(self._abort_prefix) :])
            return sum(int(x) for x in pipe.execute())

    def _key(self, jid: str) -> str:
        """SAQ's record of a job id: the API may answer the job's key or its full id."""
        return jid if jid.startswith(self._prefix) else self._prefix + jid

    def _classify(self, jid: str, raw: bytes | None) -> tuple[dict[str, Any], float | None]:
        """(record, seconds SAQ keeps this job once finished) of one job from its JSON, None when gone."""
        if raw is None:
            return job_record(jid, "missing"), None
        try:
            job = json.loads(raw)
            status = str(job.get("status", ""))
        except (ValueError, AttributeError):
            self.notes.append(
                f"saq: the record of job {jid} is not SAQ's JSON (a custom dump?): fate unknown"
            )
            return job_record(jid, "unknown"), None
        kept = _kept_s(job.get("ttl"))
        tries = int(job.get("attempts") or 0)
        enqueued, start, end = _ts(job.get("queued")), _ts(job.get("started")), _ts(job.get("completed"))
        if status == "complete":
            att = [attempt(tries or 1, start, end, "success", None)]
            rec = job_record(jid, "done", enqueued_ts=enqueued, attempts=att, done_ts=end, executions=tries)
            return rec, kept
        if status in ("failed", "aborted"):
            # failed: the function raised (no retry left); aborted: aborted, or swept as stuck (timeout)
            outcome = "dead" if status == "failed" else "cancelled"
            error = f"{status}: {_error(job.get('error')) or ''}".rstrip(": ")
            # an aborted job may never have started: no attempt then
            att = [attempt(tries or 1, start, end, outcome, error)] if start is not None else []
            rec = job_record(jid, "dead", enqueued_ts=enqueued, attempts=att, dead_ts=end, executions=tries)
            return rec, kept
        if status in _RUNNING:
            att = [attempt(tries or 1, start, None, None, None)]
            return job_record(jid, "running", enqueued_ts=enqueued, attempts=att, executions=tries), kept
        if status not in _PENDING:
            self.notes.append(f"saq: job {jid} has a status this tracker does not know ({status!r}): pending")
        # a retry waiting: SAQ keeps its try count and error, not its times
        return job_record(jid, "pending", enqueued_ts=enqueued, executions=tries), kept

    def export(
        self, job_ids: Iterable[str], accepted_ts: Mapping[str, float], timeout_s: float = 0.0
    ) -> Iterator[dict[str, Any]]:
        """Records of job_ids; jobs gone without a trace are missing (lost) or unknown, see the module doc."""
        records: list[dict[str, Any]] = []
        kept: list[float] = []
        ids = list(job_ids)
        now = time.time()
        for i in range(0, len(ids), CHUNK):
            chunk = ids[i : i + CHUNK]
            raws: list[bytes | None] = self.client.mget([self._key(j) for j in chunk])  # type: ignore[assignment]
            for jid, raw in zip(chunk, raws, strict=True):
                rec, kept_s = self._classify(jid, raw)
                records.append(rec)
                if kept_s is not None:
                    kept.append(kept_s)
        gone = [r for r in records if r["state"] == "missing"]
        if gone:
            self._judge_gone(gone, kept, accepted_ts, now)
        for rec in records:
            self.counts[rec["state"]] = self.counts.get(rec["state"], 0) + 1
        yield from records

    def _judge_gone(
        self, gone: list[dict[str, Any]], kept: list[float], accepted_ts: Mapping[str, float], now: float
    ) -> None:
        """Lost only when the ttl this run's records carry (every record states its own) outlives the run."""
        first = min((accepted_ts[r["job_id"]] for r in gone if r["job_id"] in accepted_ts), default=None)
        age_s = now - first if first is not None else float("inf")
        keep_s = min(kept) if kept else None
        why = ""
        if keep_s is None:
            why = (
                "no job of this run left a record to tell SAQ's ttl (ttl = -1, or they expired): "
                "keep finished jobs longer than the run (ttl, 0 = keep) to tell finished from lost"
            )
        elif keep_s <= age_s:
            why = (
                f"finished jobs are kept ~{keep_s:.0f} s (ttl), less than the {age_s:.0f} s since the first "
                "job: keep finished jobs longer than the run (ttl, 0 = keep) to tell finished from lost"
            )
        if why:
            for rec in gone:
                rec["state"] = "unknown"
            self.notes.append(f"saq: the fate of {len(gone)} job(s) is unknown: {why}")
            return
        shown = ", ".join(r["job_id"] for r in gone[:5])
        kept_txt = "forever (ttl = 0)" if keep_s == float("inf") else f"~{keep_s:.0f} s (ttl)"
        self.notes.append(
            f"saq: {len(gone)} accepted job(s) have no record in SAQ although finished jobs are kept "
            f"{kept_txt}: lost ({shown})"
        )

    def close(self) -> None:
        """Close the Redis client."""
        self.client.close()

"""The rq tracker: each job's fate from what RQ (2.x, 3.x) itself stores, read with RQ's own key names.

A job is the hash `rq:job:<id>` (status, created_at, enqueued_at, started_at, ended_at); each ended execution
may add an entry to the stream `rq:results:<id>` (type, exception text, and in RQ 3 its start and end). A
finished job's hash and results are kept `result_ttl` seconds (default 500; 0 deletes them at once, -1 keeps
them), a failed one's `failure_ttl` (default a year). The queue is the list `rq:queue:<q>`; the registries
`rq:wip:<q>` (started), `rq:finished:<q>`, `rq:failed:<q>`, `rq:deferred:<q>`, `rq:scheduled:<q>` give depth.

A job whose hash and results are gone either finished and expired (or was never kept) or was lost: the two
leave the same trace, so a gone job is called lost only when this run's own records show that RQ keeps them
longer than the run has lasted; otherwise its fate is "unknown", said so with the setting that would tell.
Only one round trip per chunk of jobs (a pipeline), never one per job.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

import redis
from rq.defaults import DEFAULT_FAILURE_TTL
from rq.job import Job
from rq.queue import Queue
from rq.registry import (
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)
from rq.results import Result
from rq.utils import str_to_date

from targets.trackers.base import attempt, job_record

CHUNK: Final = 1_000
ERROR_CHARS: Final = 200
_FIELDS: Final = ("status", "created_at", "enqueued_at", "started_at", "ended_at")
_DONE: Final = ("finished",)
_DEAD: Final = ("failed", "stopped", "canceled")
# result types by name: RQ 2.0 has only the first three, RQ 3 adds retried and max-retries-exceeded
_OUTCOME: Final = {
    "SUCCESSFUL": "success",
    "FAILED": "dead",
    "STOPPED": "cancelled",
    "RETRIED": "retry",
    "MAX_RETRIES_EXCEEDED": "dead",
}


def _ts(raw: bytes | None) -> float | None:
    """Seconds since the epoch of one of RQ's timestamp fields ('' or absent: None)."""
    if not raw:
        return None
    try:
        return str_to_date(raw).timestamp()
    except ValueError:
        return None


def _results_key(job_id: str) -> str:
    """RQ's results stream of a job (Result.get_key, which is untyped)."""
    key: str = Result.get_key(job_id)  # type: ignore[no-untyped-call]
    return key


def _error(text: str | None) -> str | None:
    """The last line of a traceback (the exception itself), cut to ERROR_CHARS."""
    if not text:
        return None
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:ERROR_CHARS] if lines else None


class RqTracker:
    """Queue depth from RQ's queue list and registries; job fates from its job hashes and result streams."""

    name = "rq"

    def __init__(self, client: redis.Redis, queue: str = "default") -> None:
        self.client = client
        self.queue = queue
        self.notes: list[str] = []
        self.counts: dict[str, int] = {}
        # how long RQ keeps an ended job's record (s from its end), seen on this export's finished / failed jobs
        self._kept_done: list[float] = []
        self._kept_dead: list[float] = []
        self._queue_key = Queue.redis_queue_namespace_prefix + queue
        self._wip = StartedJobRegistry.key_template.format(queue)
        self._finished = FinishedJobRegistry.key_template.format(queue)
        self._failed = FailedJobRegistry.key_template.format(queue)
        self._later = (
            DeferredJobRegistry.key_template.format(queue),
            ScheduledJobRegistry.key_template.format(queue),
        )

    def depth(self) -> dict[str, int]:
        """ready (the queue list), deferred (deferred + scheduled, e.g. retries waiting), in_progress (started
        registry), dlq (failed registry, still kept), completed (finished registry, still kept): one round trip."""
        now = time.time()
        with self.client.pipeline(transaction=False) as pipe:
            pipe.llen(self._queue_key)
            for key in self._later:
                pipe.zcard(key)
            pipe.zcard(self._wip)
            # registry scores are expiry times: members past theirs wait for RQ's cleanup, their jobs are gone
            pipe.zcount(self._failed, now, "+inf")
            pipe.zcount(self._finished, now, "+inf")
            ready, deferred, scheduled, wip, failed, finished = (int(x) for x in pipe.execute())
        return {
            "ready": ready,
            "deferred": deferred + scheduled,
            "in_progress": wip,
            "dlq": failed,
            "completed": finished,
        }

    def _fetch(self, ids: list[str]) -> list[tuple[list[Any], int, list[Any]]]:
        with self.client.pipeline(transaction=False) as pipe:
            for jid in ids:
                pipe.hmget(Job.key_for(jid), list(_FIELDS))
                pipe.pttl(Job.key_for(jid))
                pipe.xrange(_results_key(jid), count=10)  # RQ keeps at most 10 (maxlen)
            replies: list[Any] = pipe.execute()
        return [(replies[i], int(replies[i + 1]), replies[i + 2]) for i in range(0, len(replies), 3)]

    def _attempts(self, jid: str, stream: list[Any]) -> list[dict[str, Any]]:
        """One attempt per ended execution RQ kept a result of (never its return value: not unpickled here)."""
        out: list[dict[str, Any]] = []
        for result_id, payload in stream:
            fields = {k: v for k, v in payload.items() if k not in (b"return_value", "return_value")}
            try:
                res = Result.restore(jid, result_id.decode(), fields, connection=self.client)
            except (ValueError, KeyError):  # a result entry of an RQ version we do not know
                continue
            # RQ 3 records each execution's start and end; RQ 2 only when the result was written (its end)
            started = getattr(res, "execution_started_at", None)
            end_dt = getattr(res, "execution_ended_at", None) or res.created_at
            start = started.timestamp() if started else None
            outcome = _OUTCOME.get(res.type.name)
            out.append(attempt(len(out) + 1, start, end_dt.timestamp(), outcome, _error(res.exc_string)))
        return out

    def _classify(
        self, jid: str, fields: list[Any], pttl: int, stream: list[Any], now: float
    ) -> dict[str, Any]:
        raw_status, created, enqueued, started, ended = fields
        status = raw_status.decode() if raw_status else None
        attempts = self._attempts(jid, stream)
        start_ts, end_ts = _ts(started), _ts(ended)
        if raw_status is None and not any(fields):
            # the hash is gone: its results stream (same retention) may still say how it ended
            if attempts and attempts[-1]["outcome"] in ("success", "dead", "cancelled"):
                last = attempts[-1]
                ok = last["outcome"] == "success"
                return job_record(
                    jid,
                    "done" if ok else "dead",
                    attempts=attempts,
                    done_ts=last["end_ts"] if ok else None,
                    dead_ts=None if ok else last["end_ts"],
                    executions=len(attempts),
                )
            return job_record(jid, "missing")
        # created_at is set once, by queue.enqueue; enqueued_at is set again by every retry
        enqueued_ts = _ts(created) or _ts(enqueued)
        if status in _DONE or status in _DEAD:
            if not attempts or attempts[-1]["outcome"] in (None, "retry"):
                outcome = "success" if status in _DONE else ("dead" if status == "failed" else "cancelled")
                if start_ts is not None:  # a job canceled while queued never started: no attempt
                    attempts.append(attempt(len(attempts) + 1, start_ts, end_ts, outcome, None))
            else:  # the hash times the same (last) execution; RQ 2's results carry only when they were written
                attempts[-1]["start_ts"] = start_ts or attempts[-1]["start_ts"]
                attempts[-1]["end_ts"] = end_ts or attempts[-1]["end_ts"]
            ok = status in _DONE
            end = end_ts or (attempts[-1]["end_ts"] if attempts else None)
            self._kept(ok, pttl, end, now)
            return job_record(
                jid,
                "done" if ok else "dead",
                enqueued_ts=enqueued_ts,
                attempts=attempts,
                done_ts=end if ok else None,
                dead_ts=None if ok else end,
                executions=len(attempts),
            )
        if status == "started":
            attempts.append(attempt(len(attempts) + 1, start_ts, None, None, None))
            return job_record(
                jid, "running", enqueued_ts=enqueued_ts, attempts=attempts, executions=len(attempts)
            )
        return job_record(
            jid, "pending", enqueued_ts=enqueued_ts, attempts=attempts, executions=len(attempts)
        )

    def _kept(self, ok: bool, pttl: int, end: float | None, now: float) -> None:
        """Record how long RQ keeps this ended job's record (from its end), by outcome."""
        if pttl == -1:
            kept = float("inf")
        elif pttl >= 0:
            kept = pttl / 1000 + (now - (end or now))
        else:
            return
        (self._kept_done if ok else self._kept_dead).append(kept)

    def export(
        self, job_ids: Iterable[str], accepted_ts: Mapping[str, float], timeout_s: float = 0.0
    ) -> Iterator[dict[str, Any]]:
        """Records of job_ids; jobs gone without a trace are missing (lost) or unknown, see the module doc."""
        self._kept_done, self._kept_dead = [], []
        records: list[dict[str, Any]] = []
        ids = list(job_ids)
        now = time.time()
        for i in range(0, len(ids), CHUNK):
            chunk = ids[i : i + CHUNK]
            for jid, (fields, pttl, stream) in zip(chunk, self._fetch(chunk), strict=True):
                records.append(self._classify(jid, fields, pttl, stream, now))
        gone = [r for r in records if r["state"] == "missing"]
        if gone:
            self._judge_gone(gone, accepted_ts, now)
        for rec in records:
            self.counts[rec["state"]] = self.counts.get(rec["state"], 0) + 1
        yield from records

    def _judge_gone(self, gone: list[dict[str, Any]], accepted_ts: Mapping[str, float], now: float) -> None:
        """Lost only when RQ keeps both a finished and a failed job's record longer than the run has lasted."""
        # the oldest a gone job's record could be: accepted at the gone jobs' first acceptance
        first = min((accepted_ts[r["job_id"]] for r in gone if r["job_id"] in accepted_ts), default=None)
        age_s = now - first if first is not None else float("inf")
        keep_done = min(self._kept_done) if self._kept_done else None
        # failure_ttl: what this run's failed jobs show, else RQ's default (a year)
        keep_dead = min(self._kept_dead) if self._kept_dead else float(DEFAULT_FAILURE_TTL)
        why = ""
        if keep_done is None:
            why = (
                "no finished job of this run left its record (result_ttl = 0, or it expired): "
                "keep results longer than the run (result_ttl) to tell finished from lost"
            )
        elif keep_done <= age_s:
            why = (
                f"finished jobs are kept ~{keep_done:.0f} s (result_ttl), less than the {age_s:.0f} s since "
                "the first job: keep results longer than the run (result_ttl) to tell finished from lost"
            )
        elif keep_dead <= age_s:
            why = (
                f"failed jobs are kept ~{keep_dead:.0f} s (failure_ttl), less than the {age_s:.0f} s since "
                "the first job: keep failures longer than the run (failure_ttl) to tell failed from lost"
            )
        if why:
            for rec in gone:
                rec["state"] = "unknown"
            self.notes.append(f"rq: the fate of {len(gone)} job(s) is unknown: {why}")
            return
        shown = ", ".join(r["job_id"] for r in gone[:5])
        self.notes.append(
            f"rq: {len(gone)} accepted job(s) have no record in RQ although finished jobs are kept "
            f"~{keep_done:.0f} s: lost ({shown})"
        )

    def close(self) -> None:
        """Close the Redis client."""
        self.client.close()

"""The celery tracker: each task's fate from what Celery (5.x, Redis broker and result backend) itself stores.

The result backend writes `celery-task-meta-<id>` (JSON: status, result, traceback, date_done; with
`result_extended=True` also name, args, worker, retries, queue) when a task ends, and a STARTED entry (no time)
with `task_track_started=True`; it keeps each `result_expires` seconds (default 1 day; None or 0: no expiry).
No enqueue or start time is stored anywhere: end-to-end runs from the API's answer to date_done, queue wait is
not known. The broker (kombu's Redis transport) holds a queued message in the list `<queue>` (and
`<queue>\\x06\\x16<n>` per priority step), JSON with the task id in `headers.id`; a message delivered to a worker
and not yet acked is in the hash `unacked` (delivery tag -> [message, exchange, routing key]) and the zset
`unacked_index` (delivery tag -> when delivered), both shared by every queue of the broker's database.

A task with no result key is what Celery calls PENDING: queued if its id is in the broker's list or unacked,
otherwise it finished and its result expired (or was never stored), or it was lost. Those leave the same trace,
so it is called lost only when this run's own results show that the backend keeps them longer than the run has
lasted; otherwise its fate is "unknown", said so with the setting that would tell (`result_expires`).
By default Celery acks a message just before the task runs (early ack): a running task is then in no key at
all (unless `task_track_started`), so ids found nowhere are read again for a few seconds before being judged.
One round trip per chunk of jobs (one MGET and the keys' PTTLs in a pipeline), never one per job.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import redis
from celery import states  # type: ignore[import-untyped]
from celery.backends.base import KeyValueStoreBackend  # type: ignore[import-untyped]
from kombu.transport.redis import Channel  # type: ignore[import-untyped]

from targets.trackers.base import attempt, job_record

CHUNK: Final = 1_000
ERROR_CHARS: Final = 200
# a task acked early and running leaves no key: ids found nowhere are read again this long (at most the
# export's timeout) before they are judged
SETTLE_S: Final = 3.0
SETTLE_EVERY_S: Final = 0.2
_RESULT_PREFIX: Final = KeyValueStoreBackend.task_keyprefix
_DONE: Final = (states.SUCCESS,)
_DEAD: Final = (states.FAILURE, states.REVOKED)
_RUNNING: Final = (states.STARTED, states.RETRY)


def _ts(raw: object) -> float | None:
    """Seconds since the epoch of Celery's date_done (ISO 8601; naive means UTC, Celery's default)."""
    if not isinstance(raw, str) or not raw:
        return None
    try:
        dt = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def _error(meta: Mapping[str, Any]) -> str | None:
    """The exception of a failed task (exc_type: exc_message), else the traceback's last line."""
    result = meta.get("result")
    if isinstance(result, dict) and result.get("exc_type"):
        message = result.get("exc_message")
        if isinstance(message, list | tuple):
            message = ", ".join(str(m) for m in message)
        return f"{result['exc_type']}: {message}"[:ERROR_CHARS]
    tb = meta.get("traceback")
    if isinstance(tb, str):
        lines = [line for line in tb.strip().splitlines() if line.strip()]
        return lines[-1][:ERROR_CHARS] if lines else None
    return None


def _message_id(raw: bytes | str, unacked: bool) -> str | None:
    """The task id of a broker message (protocol 2: headers.id); unacked entries are [message, ex, rk]."""
    try:
        msg = json.loads(raw)
        if unacked:
            msg = msg[0]
        task_id = msg["headers"]["id"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return task_id if isinstance(task_id, str) else None


class CeleryTracker:
    """Queue depth from kombu's queue lists and unacked hash; task fates from Celery's result keys."""

    name = "celery"

    def __init__(self, client: redis.Redis, queue: str = "celery") -> None:
        self.client = client
        self.queue = queue
        self.notes: list[str] = []
        self.counts: dict[str, int] = {}
        # how long the backend keeps an ended task's result (s from date_done), seen on this export's results
        self._kept: list[float] = []
        self._unreadable = 0
        # kombu's key of each priority step: the queue itself for priority 0, then <queue><sep><step>
        self._lists = [queue] + [f"{queue}{Channel.sep}{p}" for p in Channel.priority_steps if p]

    def depth(self) -> dict[str, int]:
        """ready (the queue's lists, every priority), in_progress (unacked: delivered to a worker, not yet
        acked: prefetched, and running too with task_acks_late): one round trip. Celery has no dead-letter
        queue and counts no results, and its eta/countdown tasks wait unacked in a worker: the rest is 0."""
        with self.client.pipeline(transaction=False) as pipe:
            for key in self._lists:
                pipe.llen(key)
            pipe.hlen(Channel.unacked_key)
            *lengths, unacked = (int(x) for x in pipe.execute())
        return {"ready": sum(lengths), "deferred": 0, "in_progress": unacked, "dlq": 0, "completed": 0}

    def _fetch(self, ids: list[str]) -> list[tuple[bytes | None, int]]:
        keys = [_RESULT_PREFIX + jid for jid in ids]
        with self.client.pipeline(transaction=False) as pipe:
            pipe.mget(keys)
            for key in keys:
                pipe.pttl(key)
            values, *pttls = pipe.execute()
        return list(zip(values, (int(p) for p in pttls), strict=True))

    def _queued_ids(self) -> set[str]:
        """Ids of the messages in the queue's lists or unacked (read only when some task has no result)."""
        with self.client.pipeline(transaction=False) as pipe:
            for key in self._lists:
                pipe.lrange(key, 0, -1)
            pipe.hvals(Channel.unacked_key)
            *lists, unacked = pipe.execute()
        ids = {_message_id(raw, unacked=False) for entries in lists for raw in entries}
        ids.update(_message_id(raw, unacked=True) for raw in unacked)
        ids.discard(None)
        return {i for i in ids if i is not None}

    def _classify(
        self, jid: str, raw: bytes | None, pttl: int, enqueued: float | None, now: float
    ) -> dict[str, Any]:
        if raw is None:
            return job_record(jid, "missing", enqueued_ts=enqueued)  # PENDING: queued, expired or lost
        try:
            meta = json.loads(raw)
            status = meta["status"]
        except (ValueError, KeyError, TypeError):
            self._unreadable += 1  # not JSON: a result_serializer this tracker does not read
            return job_record(jid, "unknown", enqueued_ts=enqueued)
        # result_extended stores how often the task called retry(); without it only the last try is known
        retries = meta.get("retries") if isinstance(meta.get("retries"), int) else 0
        tried = [attempt(i + 1, None, None, "retry", None) for i in range(retries)]
        if status in _DONE or status in _DEAD:
            ok = status in _DONE
            end = _ts(meta.get("date_done"))
            if end is not None:
                self._kept.append(float("inf") if pttl == -1 else pttl / 1000 + (now - end))
            outcome = "success" if ok else ("dead" if status == states.FAILURE else "cancelled")
            last = attempt(retries + 1, None, end, outcome, None if ok else _error(meta))
            return job_record(
                jid,
                "done" if ok else "dead",
                enqueued_ts=enqueued,
                attempts=[*tried, last],
                done_ts=end if ok else None,
                dead_ts=None if ok else end,
                executions=retries + 1,
            )
        if status in _RUNNING:
            running = (
                [*tried, attempt(retries + 1, None, None, None, None)] if status == states.STARTED else tried
            )
            return job_record(jid, "running", enqueued_ts=enqueued, attempts=running, executions=len(running))
        return job_record(jid, "pending", enqueued_ts=enqueued)  # a state stored by a custom task

    def _read(self, ids: list[str], accepted_ts: Mapping[str, float], now: float) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        for i in range(0, len(ids), CHUNK):
            chunk = ids[i : i + CHUNK]
            for jid, (raw, pttl) in zip(chunk, self._fetch(chunk), strict=True):
                records.append(self._classify(jid, raw, pttl, accepted_ts.get(jid), now))
        return records

    def _with_queued(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Missing records whose id is in the broker's list or unacked become pending; the rest: still missing."""
        gone = [r for r in records if r["state"] == "missing"]
        if gone:
            queued = self._queued_ids()
            for rec in gone:
                if rec["job_id"] in queued:
                    rec["state"] = "pending"
        return [r for r in records if r["state"] == "missing"]

    def export(
        self, job_ids: Iterable[str], accepted_ts: Mapping[str, float], timeout_s: float = 0.0
    ) -> Iterator[dict[str, Any]]:
        """Records of job_ids (enqueued_ts: when the API answered); tasks found nowhere are missing (lost) or
        unknown, see the module doc."""
        self._kept, self._unreadable = [], 0
        ids = list(job_ids)
        records = self._read(ids, accepted_ts, time.time())
        gone = self._with_queued(records)
        deadline = time.monotonic() + min(timeout_s, SETTLE_S)
        while gone and time.monotonic() < deadline:
            time.sleep(SETTLE_EVERY_S)  # an early-acked task running now shows up when it ends
            again = {
                r["job_id"]: r for r in self._read([r["job_id"] for r in gone], accepted_ts, time.time())
            }
            records = [again.get(r["job_id"], r) for r in records]
            gone = self._with_queued(list(again.values()))
        if self._unreadable:
            self.notes.append(
                f"celery: {self._unreadable} result(s) are not JSON (result_serializer): their fate is unknown"
            )
        if gone:
            self._judge_gone(gone, accepted_ts, time.time())
        for rec in records:
            self.counts[rec["state"]] = self.counts.get(rec["state"], 0) + 1
        yield from records

    def _judge_gone(self, gone: list[dict[str, Any]], accepted_ts: Mapping[str, float], now: float) -> None:
        """Lost only when the backend keeps results (result_expires) longer than the run has lasted."""
        # the oldest a gone task's result could be: accepted at the gone tasks' first acceptance
        first = min((accepted_ts[r["job_id"]] for r in gone if r["job_id"] in accepted_ts), default=None)
        age_s = now - first if first is not None else float("inf")
        keep_s = min(self._kept) if self._kept else None
        why = ""
        if keep_s is None:
            why = (
                "no task of this run left a result (no result backend, ignore_result, or results expired): "
                "keep results longer than the run (result_expires) to tell finished from lost"
            )
        elif keep_s <= age_s:
            why = (
                f"results are kept ~{keep_s:.0f} s (result_expires), less than the {age_s:.0f} s since the "
                "first task: keep results longer than the run (result_expires) to tell finished from lost"
            )
        if why:
            for rec in gone:
                rec["state"] = "unknown"
            self.notes.append(f"celery: the fate of {len(gone)} task(s) is unknown: {why}")
            return
        shown = ", ".join(r["job_id"] for r in gone[:5])
        self.notes.append(
            f"celery: {len(gone)} accepted task(s) have no result and are in neither the queue nor unacked "
            f"although results are kept ~{keep_s:.0f} s: lost ({shown}) (a task acked early and still running "
            "leaves no trace either: task_track_started=True would show it)"
        )

    def close(self) -> None:
        """Close the Redis client."""
        self.client.close()

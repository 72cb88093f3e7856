"""The dramatiq tracker: each message's fate from what Dramatiq (Redis broker, Results middleware) itself stores.

The Redis broker (namespace `dramatiq`) keeps a message only until it is acked: the list `dramatiq:<q>` holds
the ready messages' broker ids, the hash `dramatiq:<q>.msgs` every message not yet acked (queued, or fetched by
a worker: its broker id is then in the worker's set `dramatiq:__acks__.<worker>.<q>`), `dramatiq:<q>.DQ(.msgs)`
the delayed ones (retries waiting out their backoff), and the zset `dramatiq:<q>.XQ` (score: when, in ms) with
the hash `dramatiq:<q>.XQ.msgs` the dead letters, kept `dead_message_ttl` (7 days). Each message (Dramatiq's
JSON) carries its `message_id` (what `send()` returns), `message_timestamp` (the enqueue, in ms: the only time
Dramatiq stores) and `options.retries` (tries that failed). An ack deletes the message: a success leaves no
trace at all unless the Results middleware stores it (`store_results=True`): a list under
md5("dramatiq-results:<q>:<actor>:<message_id>") (or that text itself with `use_namespace_prefix_keys`),
holding the return value or the exception, kept `result_ttl` ms (default 600000). The key needs the actor's
name: `queue = "<queue>:<actor>"` names it; without it the actor names of the messages seen are used.

A message in no key either succeeded without a kept result or was lost: the two leave the same trace, so it is
called lost only when this run's own results show they are kept longer than the run has lasted; otherwise its
fate is "unknown", said so with the settings that would tell (`store_results`, `result_ttl`).
One round trip for the broker's keys and one per chunk of jobs for the results, never one per job.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import dq_name, xq_name
from dramatiq.message import Message
from dramatiq.results.backend import ResultBackend

from targets.trackers.base import attempt, job_record

CHUNK: Final = 1_000
ERROR_CHARS: Final = 200
NAMESPACE: Final = str(inspect.signature(RedisBroker).parameters["namespace"].default)  # "dramatiq"
_HASHED: Final = ResultBackend()  # Dramatiq's default result keys (md5 of the readable key)


def _readable() -> ResultBackend | None:
    """The backend's readable key form (`use_namespace_prefix_keys`); None in Dramatiq versions without it (1.15)."""
    try:
        return ResultBackend(use_namespace_prefix_keys=True)  # type: ignore[call-arg,unused-ignore]
    except TypeError:
        return None


_READABLE: Final = _readable()
_CANARY_KEY: Final = "__t"  # Dramatiq's mark of a stored exception (results.result.wrap_exception)


def _message(raw: bytes) -> Message[Any] | None:
    try:
        return Message.decode(raw)
    except Exception:  # noqa: BLE001 - Dramatiq raises DecodeError or anything its encoder raised
        return None


def _retries(msg: Message[Any]) -> int:
    tries = msg.options.get("retries")
    return tries if isinstance(tries, int) else 0


class DramatiqTracker:
    """Queue depth from the broker's queue, delay queue and dead letters; fates from messages and results."""

    name = "dramatiq"

    def __init__(self, client: redis.Redis, queue: str = "default") -> None:
        self.client = client
        # "<queue>:<actor>": Dramatiq's queue names cannot hold ":", the result key needs the actor
        self.queue, _, actor = queue.partition(":")
        self.actors = [actor] if actor else []
        self.notes: list[str] = []
        self.counts: dict[str, int] = {}
        ns = NAMESPACE + ":"
        self._q = ns + self.queue
        self._msgs = self._q + ".msgs"
        self._dq_msgs = ns + dq_name(self.queue) + ".msgs"
        self._xq = ns + xq_name(self.queue)
        self._xq_msgs = self._xq + ".msgs"

    def depth(self) -> dict[str, int]:
        """ready (the queue list), deferred (delay queue: retries waiting), in_progress (not acked and not in the
        list: fetched by a worker, running or prefetched: what the ack sets hold), dlq (dead letters), one round
        trip. Dramatiq keeps no count of successes: completed 0."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.llen(self._q)
            pipe.hlen(self._msgs)
            pipe.hlen(self._dq_msgs)
            pipe.zcard(self._xq)
            ready, unacked, later, dead = (int(x) for x in pipe.execute())
        return {
            "ready": ready,
            "deferred": later,
            "in_progress": max(unacked - ready, 0),
            "dlq": dead,
            "completed": 0,
        }

    def _broker(self) -> dict[str, tuple[str, Message[Any], float | None]]:
        """message_id -> (where, message, dead-lettered at) of every message the broker holds for the queue."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.lrange(self._q, 0, -1)
            pipe.hgetall(self._msgs)
            pipe.hgetall(self._dq_msgs)
            pipe.zrange(self._xq, 0, -1, withscores=True)
            pipe.hgetall(self._xq_msgs)
            ready_ids, msgs, delayed, xq, dead = pipe.execute()
        ready = set(ready_ids)
        when = {rid: score / 1000 for rid, score in xq}
        found: dict[str, tuple[str, Message[Any], float | None]] = {}
        # later entries win: a message moving from the delay queue to the queue, or dead-lettered
        layers = [
            ("delayed", delayed.items(), False),
            ("queued", ((k, v) for k, v in msgs.items() if k in ready), False),
            ("fetched", ((k, v) for k, v in msgs.items() if k not in ready), False),
            ("dead", dead.items(), True),
        ]
        for where, entries, is_dead in layers:
            for rid, raw in entries:
                msg = _message(raw)
                if msg is not None:
                    found[msg.message_id] = (where, msg, when.get(rid) if is_dead else None)
                    if msg.actor_name not in self.actors:
                        self.actors.append(msg.actor_name)
        return found

    def _results(self, ids: list[str]) -> dict[str, tuple[Any, int]]:
        """message_id -> (decoded result, its key's PTTL) of each id with a stored result, any known actor."""
        out: dict[str, tuple[Any, int]] = {}
        if not self.actors:
            return out
        for i in range(0, len(ids), CHUNK):
            chunk = ids[i : i + CHUNK]
            keys = []
            for jid in chunk:
                for actor in self.actors:
                    msg: Message[Any] = Message(
                        queue_name=self.queue,
                        actor_name=actor,
                        args=(),
                        kwargs={},
                        options={},
                        message_id=jid,
                    )
                    keys.append((jid, _HASHED.build_message_key(msg)))
                    if _READABLE is not None:
                        keys.append((jid, _READABLE.build_message_key(msg)))
            with self.client.pipeline(transaction=False) as pipe:
                for _, key in keys:
                    pipe.lindex(key, 0)
                    pipe.pttl(key)
                replies = pipe.execute()
            for n, (jid, _) in enumerate(keys):
                raw, pttl = replies[2 * n], int(replies[2 * n + 1])
                if raw is not None and jid not in out:
                    try:
                        out[jid] = (json.loads(raw), pttl)
                    except ValueError:
                        out[jid] = (None, pttl)  # not JSON: a custom encoder; it exists, so it ended
        return out

    def _classify(
        self, jid: str, seen: tuple[str, Message[Any], float | None] | None, result: tuple[Any, int] | None
    ) -> dict[str, Any]:
        msg = seen[1] if seen else None
        enqueued = msg.message_timestamp / 1000 if msg is not None else None
        tries = _retries(msg) if msg is not None else 0
        if result is not None:
            value = result[0]
            if isinstance(value, dict) and _CANARY_KEY in value and isinstance(value.get("exn"), dict):
                exn = value["exn"]
                error = f"{exn.get('type')}: {exn.get('msg')}"[:ERROR_CHARS]
                dead_ts = seen[2] if seen and seen[0] == "dead" else None
                att = [attempt(tries + 1, None, dead_ts, "dead", error)]
                return job_record(
                    jid, "dead", enqueued_ts=enqueued, attempts=att, dead_ts=dead_ts, executions=tries + 1
                )
            # a stored result says when nothing: no start, no end
            att = [attempt(tries + 1, None, None, "success", None)]
            return job_record(jid, "done", enqueued_ts=enqueued, attempts=att, executions=tries + 1)
        if seen is None:
            return job_record(jid, "missing")
        where, _, dead_ts = seen
        if where == "dead":
            att = [attempt(tries + 1, None, dead_ts, "dead", None)]
            return job_record(
                jid, "dead", enqueued_ts=enqueued, attempts=att, dead_ts=dead_ts, executions=tries + 1
            )
        if where == "fetched":  # delivered to a worker, not acked: running (or prefetched, waiting in it)
            return job_record(jid, "running", enqueued_ts=enqueued, executions=tries)
        return job_record(jid, "pending", enqueued_ts=enqueued, executions=tries)  # queued or delayed

    def export(
        self, job_ids: Iterable[str], accepted_ts: Mapping[str, float], timeout_s: float = 0.0
    ) -> Iterator[dict[str, Any]]:
        """Records of job_ids (message ids); messages found nowhere are missing (lost) or unknown, see the
        module doc."""
        ids = list(job_ids)
        # the broker first, then the results: a result is stored before its message is acked, so a message
        # that leaves the broker between the two reads is found in the results
        seen = self._broker()
        results = self._results(ids)
        records = [self._classify(jid, seen.get(jid), results.get(jid)) for jid in ids]
        gone = [r for r in records if r["state"] == "missing"]
        if gone:
            pttls = [p for _, p in results.values()]
            self._judge_gone(gone, pttls, accepted_ts, time.time())
        for rec in records:
            self.counts[rec["state"]] = self.counts.get(rec["state"], 0) + 1
        yield from records

    def _judge_gone(
        self, gone: list[dict[str, Any]], pttls: list[int], accepted_ts: Mapping[str, float], now: float
    ) -> None:
        """Lost only when this run's results show they are kept (result_ttl) longer than the run has lasted."""
        first = min((accepted_ts[r["job_id"]] for r in gone if r["job_id"] in accepted_ts), default=None)
        age_s = now - first if first is not None else float("inf")
        # the longest time left on a result is a lower bound of result_ttl (-1: no expiry)
        keep_s = max((float("inf") if p == -1 else p / 1000 for p in pttls), default=None)
        why = ""
        if not self.actors:
            why = (
                "no message of this run told the actor's name, so results cannot be looked up: give [jobs] queue = "
                '"<queue>:<actor>"'
            )
        elif keep_s is None:
            why = (
                "no message of this run left a result (no Results middleware, or store_results is off, or "
                "results expired): store results (Results middleware, store_results=True) with a result_ttl "
                "longer than the run to tell finished from lost"
            )
        elif keep_s <= age_s:
            why = (
                f"results are kept ~{keep_s:.0f} s (result_ttl), less than the {age_s:.0f} s since the first "
                "message: keep results longer than the run (result_ttl) to tell finished from lost"
            )
        if why:
            for rec in gone:
                rec["state"] = "unknown"
            self.notes.append(f"dramatiq: the fate of {len(gone)} message(s) is unknown: {why}")
            return
        shown = ", ".join(r["job_id"] for r in gone[:5])
        kept = "with no expiry" if keep_s == float("inf") else f"~{keep_s:.0f} s or more (result_ttl)"
        self.notes.append(
            f"dramatiq: {len(gone)} accepted message(s) have no result and are in neither the queue, the delay "
            f"queue, a worker's unacked messages nor the dead letters although results are kept {kept}: "
            f"lost ({shown})"
        )

    def close(self) -> None:
        """Close the Redis client."""
        self.client.close()

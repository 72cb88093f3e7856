"""The http tracker: after the load, poll each accepted job's status URL at a bounded rate for a bounded time.

Polling starts when the load has ended (status requests during the load would add load to the API under
test), so a job found finished at its first poll has no measured end-to-end time (done_ts stays null); a job
seen unfinished and then finished gets the poll time as done_ts, an upper bound within one poll round.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

from targets.model import Jobs
from targets.trackers.base import job_record

REQUEST_TIMEOUT_S: Final = 5.0


def _dig(data: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        if isinstance(data, dict):
            data = data.get(key)
        elif isinstance(data, list) and key.isdigit() and int(key) < len(data):
            data = data[int(key)]
        else:
            return None
    return data


class HttpTracker:
    """GET status_path per job; state at a dotted path; done / failed value lists."""

    name = "http"

    def __init__(self, base_url: str, jobs: Jobs) -> None:
        self.url = urllib.parse.urlsplit(base_url)
        assert jobs.status_path is not None
        self.status_path = jobs.status_path
        self.state_path = jobs.state
        self.done = set(jobs.done)
        self.failed = set(jobs.failed)
        self.interval_s = 1.0 / jobs.poll_rate
        self.notes: list[str] = []
        self.rounds = 0
        self.round_s: list[float] = []
        self._conn: http.client.HTTPConnection | None = None

    def depth(self) -> dict[str, int] | None:
        """A status URL shows no queue."""
        return None

    def _get(self, job_id: str) -> tuple[int, Any]:
        path = self.url.path.rstrip("/") + self.status_path.replace(
            "{job_id}", urllib.parse.quote(job_id, safe="")
        )
        for _ in range(2):  # one reconnect: the server may close an idle keep-alive connection
            if self._conn is None:
                cls = (
                    http.client.HTTPSConnection if self.url.scheme == "https" else http.client.HTTPConnection
                )
                self._conn = cls(self.url.netloc, timeout=REQUEST_TIMEOUT_S)
            try:
                self._conn.request("GET", path, headers={"Accept": "application/json"})
                resp = self._conn.getresponse()
                body = resp.read()
            except (OSError, http.client.HTTPException):
                self._conn.close()
                self._conn = None
                continue
            try:
                return resp.status, json.loads(body) if body else None
            except ValueError:
                return resp.status, None
        return 0, None

    def _poll(self, job_id: str) -> str:
        status, data = self._get(job_id)
        if status == 404:
            return "missing"
        if not 200 <= status < 300:
            return "error"
        value = _dig(data, self.state_path)
        if value in self.done:
            return "done"
        if value in self.failed:
            return "dead"
        return "pending"

    def export(
        self, job_ids: Iterable[str], accepted_ts: Mapping[str, float], timeout_s: float
    ) -> Iterator[dict[str, Any]]:
        """Poll rounds until every job is done/failed/missing or timeout_s passes; then one record per job."""
        ids = list(job_ids)
        state = dict.fromkeys(ids, "pending")
        seen_unfinished: set[str] = set()
        done_ts: dict[str, float] = {}
        open_ids = list(ids)
        deadline = time.monotonic() + timeout_s
        next_at = time.monotonic()
        while open_ids:
            started = time.time()
            still: list[str] = []
            for jid in open_ids:
                wait = next_at - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                next_at = max(next_at + self.interval_s, time.monotonic() - 1.0)
                got = self._poll(jid)
                if got in ("pending", "error"):
                    seen_unfinished.add(jid)
                    still.append(jid)
                    state[jid] = "pending" if got == "pending" else state[jid]
                    continue
                state[jid] = got
                if jid in seen_unfinished:
                    done_ts[jid] = time.time()
            self.rounds += 1
            self.round_s.append(time.time() - started)
            open_ids = still
            if time.monotonic() >= deadline:
                break
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        if self._conn is not None:
            self._conn.close()
        resolution = max(self.round_s, default=0.0)
        self.notes.append(
            f"http tracker: {self.rounds} poll round(s) after the load; end-to-end times are upper bounds "
            f"with {resolution:.2f} s resolution (the poll round), only for jobs seen unfinished first"
        )
        if open_ids:
            self.notes.append(
                f"http tracker: {len(open_ids)} job(s) still unfinished after {timeout_s:.0f} s"
            )
        for jid in ids:
            st = state[jid]
            end = done_ts.get(jid)
            yield job_record(
                jid,
                st,
                enqueued_ts=accepted_ts.get(jid),
                done_ts=end if st == "done" else None,
                dead_ts=end if st == "dead" else None,
            )

    def close(self) -> None:
        """Close the status connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

"""The sources API under load: POST /<mode>/sources, closed model (users) or open model (--arrival-rate).

    locust -f loadtests/ --host http://127.0.0.1:8000 [--config loadtests/locust.conf] --mode offload ...

Every request is captured into the run folder (see loadtests/_hooks.py); --shape activates StagesShape.
"""

from __future__ import annotations

import json
import time
from typing import Any

from locust import FastHttpUser, constant, task
from locust.user.task import LOCUST_STATE_STOPPING

from loadtests._arrivals import arrival_times, stream_seed
from loadtests._hooks import current
from loadtests._open import run_stream
from loadtests._options import EXPECTED_STATUS
from loadtests._payload import PayloadMaker
from loadtests._shape import StagesShape

__all__ = ["ApiUser", "SourcesUser", "StagesShape"]

DETAIL_CHARS = 120
# what Locust's json= adds; the body is encoded by us so the open model can build it ahead of its arrival
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


def check_response(resp: Any, mode: str) -> None:
    """Mark a semantic failure: offload must answer 202 with a job_id, noop/sync 201 with a source_id.

    The ids go into the request context, where the sample capture reads them.
    """
    status = resp.status_code
    if not status:
        return  # no response at all: Locust reports the connection error itself
    expected = EXPECTED_STATUS[mode]
    try:
        data = resp.json()
    except ValueError:
        data = None
    if status != expected:
        detail = data.get("detail") if isinstance(data, dict) else None
        resp.failure(
            f"HTTP {status}, expected {expected}" + (f": {str(detail)[:DETAIL_CHARS]}" if detail else "")
        )
        return
    if not isinstance(data, dict):
        resp.failure(f"HTTP {status} without a JSON object body")
        return
    context = resp.request_meta["context"]
    source_id = data.get("source_id")
    if isinstance(source_id, str) and source_id:
        context["source_id"] = source_id
    else:
        resp.failure(f"HTTP {status} without a source_id")
        return
    if mode == "offload":
        job_id = data.get("job_id")
        if not (isinstance(job_id, str) and job_id):
            resp.failure("HTTP 202 without a job_id")
            return
        context["job_id"] = job_id
    resp.success()


class ApiUser(FastHttpUser):
    """One user of the sources API; the mode and the load model come from the offload-bench arguments."""

    abstract = True
    wait_time = constant(0)

    def __init__(self, environment: Any) -> None:
        capture = current()
        self.opts = capture.opts
        if self.opts.model == "open":
            # one connection per request in flight: requests must not queue inside the client
            self.concurrency = max(self.concurrency, capture.stream_cap())
        super().__init__(environment)
        self._capture = capture
        self._path = self.opts.path
        self._name = self.opts.path
        proc_index, stream_index = capture.next_stream()
        self._seed = stream_seed(self.opts.seed, proc_index, stream_index)
        self._payloads = PayloadMaker(
            self.opts.payload_mix, self._seed, prefix=f"lt{proc_index}-{stream_index}"
        )

    def body(self) -> str:
        """The next request body, JSON-encoded (the open model builds it before the arrival is due)."""
        return json.dumps(self._payloads.make())

    def send(self, intended_ts: float | None, body: str | None = None) -> None:
        """POST one source; intended_ts is the open model's scheduled start (None: closed model)."""
        with self.client.post(
            self._path,
            data=self.body() if body is None else body,
            headers=JSON_HEADERS,
            name=self._name,
            catch_response=True,
            context={"intended_ts": intended_ts},
        ) as resp:
            check_response(resp, self.opts.mode)

    @task
    def act(self) -> None:
        """Closed model: one request per iteration. Open model: run this user's arrival stream until stopped."""
        if self.opts.model == "closed":
            self.send(None)
            return
        stats = self._capture.stats
        assert stats is not None
        rate = self.opts.arrival_rate / self.opts.streams
        times = arrival_times(rate, self.opts.arrival, self._seed, start_ts=time.time())
        run_stream(
            times,
            self.send,
            self._capture.stream_cap(),
            stats,
            stopping=lambda: self._state == LOCUST_STATE_STOPPING,
            stop_timeout_s=float(self.environment.stop_timeout or 0),
            prepare=self.body,
        )


class SourcesUser(ApiUser):
    """POST /<--mode>/sources."""

"""The target's API under load: one mode's request, closed model (users) or open model (--arrival-rate).

    locust -f loadtests/ --host http://127.0.0.1:8000 [--target FILE] --mode offload ...

The request of each mode comes from the target file (--target; default: the built-in sample service, whose
modes POST /<mode>/sources). Every request is captured into the run folder (see loadtests/_hooks.py);
--shape activates StagesShape.
"""

from __future__ import annotations

import time
from typing import Any

from locust import FastHttpUser, constant, task
from locust.runners import STATE_CLEANUP, STATE_STOPPED, STATE_STOPPING
from locust.user.task import LOCUST_STATE_STOPPING

from loadtests._arrivals import arrival_times, stream_seed
from loadtests._hooks import current
from loadtests._open import run_stream
from loadtests._shape import StagesShape
from loadtests._target import ModeClient, Padding, load, values_for
from targets.request import Request

_RUN_ENDING = frozenset({STATE_CLEANUP, STATE_STOPPING, STATE_STOPPED})

__all__ = ["ApiUser", "SourcesUser", "StagesShape"]

_CLIENTS: dict[str, ModeClient] = {}


def mode_client(opts: Any, host: str, proc_index: int) -> ModeClient:
    """This load process's client of a mode: one per process, so {seq} and duplicate ids span its users."""
    client = _CLIENTS.get(opts.mode)
    if client is None:
        target, _ = load(opts.target)
        client = ModeClient(target, opts.mode, values_for(host, opts.redis_url), proc_index)
        _CLIENTS[opts.mode] = client
    return client


class ApiUser(FastHttpUser):
    """One user of the target's API; the mode and the load model come from the offload-bench arguments."""

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
        proc_index, stream_index = capture.next_stream()
        self._seed = stream_seed(self.opts.seed, proc_index, stream_index)
        self._mode = mode_client(self.opts, self.host or "", proc_index)
        self._padding = Padding(self.opts.payload_mix, self._seed)

    def prepare(self) -> Request:
        """The next request (the open model builds it before the arrival is due)."""
        return self._mode.request(self._padding)

    def send(self, intended_ts: float | None, req: Request | None = None) -> None:
        """Send one request of the mode; intended_ts is the open model's scheduled start (None: closed model)."""
        req = req or self.prepare()
        with self.client.request(
            req.method,
            req.path,
            data=req.body,
            headers=req.headers,
            name=self._mode.name,
            catch_response=True,
            context={"intended_ts": intended_ts},
        ) as resp:
            self._mode.check(resp)

    def _stopping(self) -> bool:
        """This user was asked to stop, or the whole run was: Locust's stop() takes tens of ms (it inspects its
        caller's stack) before it asks the users, and an arrival due meanwhile falls after the end, not late."""
        runner = self.environment.runner
        return self._state == LOCUST_STATE_STOPPING or (runner is not None and runner.state in _RUN_ENDING)

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
            stopping=self._stopping,
            stop_timeout_s=float(self.environment.stop_timeout or 0),
            prepare=self.prepare,
        )


class SourcesUser(ApiUser):
    """The --mode request of the --target file."""

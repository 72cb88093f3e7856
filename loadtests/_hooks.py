"""Wiring into Locust's events: which roles this process plays, and the messages between them.

Roles: a *load process* (local runner or worker; loadtests/_loadside.py) runs users and captures their samples;
the *run owner* (local runner or master; loadtests/_owner.py) owns the run folder. Workers ship sample batches
(CSV text) and their loadgen numbers to the master over Locust's message channel.

Quit ordering (distributed): the master's runner.quit() fires test_stop on the master first, then tells the
workers to quit; each worker's stop() fires test_stop (we send the last sample batch and loadgen numbers there)
before its final stats report, then says it quit. Locust's master waits a fixed 0.5 s for those messages, which a
loaded machine misses (a worker's last report lost: fewer requests counted than samples written, or worse,
samples lost), so the master's quit here waits until every live worker has said it quit (bounded, QUIT_WAIT_S).
The master finishes the run folder at `quitting`, whose listeners fire in reverse order: ours is registered at
import, before the MasterRunner's, so it runs after the runner has collected the workers' last messages.
"""

from __future__ import annotations

import gc
import logging
import sys
import time
from typing import Any

import gevent
from locust import events
from locust.rpc import Message
from locust.runners import STATE_MISSING, WORKER_REPORT_INTERVAL, MasterRunner, WorkerRunner

from loadtests._arrivals import per_stream_cap
from loadtests._capture import SAMPLES_MESSAGE
from loadtests._loadgen import LOADGEN_MESSAGE
from loadtests._loadside import LoadSide
from loadtests._options import LoadOptions, add_arguments, load_options
from loadtests._owner import RunOwner

# gevent records the spawning greenlet and stack of every greenlet (a debugging aid): ~15 us per spawn here,
# on every request of the open model
gevent.config.track_greenlet_tree = False
_log = logging.getLogger("loadtests")
# how long a quitting master waits for its workers' last samples and stats (Locust's own wait is 0.5 s)
QUIT_WAIT_S = 15.0


class Capture:
    """This process's part in the current test: the load side, the run owner, or both (local run)."""

    def __init__(self, environment: Any, runner: Any) -> None:
        self.env = environment
        self.runner = runner
        self.is_master = isinstance(runner, MasterRunner)
        self.is_worker = isinstance(runner, WorkerRunner)
        self.opts: LoadOptions = load_options(environment.parsed_options)
        self.load: LoadSide | None = None
        self.owner: RunOwner | None = None
        self._streams_started = 0
        self.tests = 0
        # web UI: Stop = a finished run; the run folder is closed in this greenlet, off the request path
        self._finishing: gevent.Greenlet | None = None

    @property
    def proc(self) -> str:
        """This load process's id: the worker index, or 0 for a local run."""
        return str(self.runner.worker_index) if self.is_worker else "0"

    @property
    def stats(self) -> Any:
        """The loadgen counters of the current test (None outside one)."""
        return self.load.stats if self.load is not None else None

    def next_stream(self) -> tuple[int, int]:
        """(proc index, stream index in this process) of a new open-model user."""
        self._streams_started += 1
        return (max(0, int(self.proc)), self._streams_started - 1)

    def stream_cap(self) -> int:
        """Requests in flight one arrival stream may have."""
        return per_stream_cap(self.opts.max_in_flight, self.opts.streams)

    def on_test_start(self, environment: Any, **_: Any) -> None:
        parsed = environment.parsed_options
        if not self.is_worker:
            self.finish()  # a previous test of this process (web UI) gets its folder closed first
            self._finishing = None
            # the arrival streams of the whole test: shipped to workers with the spawn message
            shaped = environment.shape_class is not None
            parsed.ob_streams = (
                int(parsed.num_users or 1) if shaped else max(1, self.runner.target_user_count)
            )
        self.opts = load_options(parsed)
        if not self.is_worker:
            self.tests += 1
            processes = self.runner.worker_count if self.is_master else 1
            # only the first test of a process may use --run-dir: a later one (web UI) gets its own folder
            given = self.opts.run_dir if self.tests == 1 else ""
            self.owner = RunOwner(self.opts, parsed, given, processes, environment.host)
        if not self.is_master:
            self._streams_started = 0
            self.load = LoadSide(self.opts, self.proc, self._sink() if self.opts.capture else None)
            environment.events.request.add_listener(self.load.on_request)

    def _sink(self) -> Any:
        mode, proc = self.opts.mode, self.proc
        if self.is_worker:
            runner = self.runner

            def send(text: str, rows: int) -> None:
                runner.send_message(SAMPLES_MESSAGE, {"mode": mode, "proc": proc, "rows": rows, "csv": text})

            return send
        owner = self.owner
        assert owner is not None
        return lambda text, rows: owner.write_samples(mode, proc, text, rows)

    def on_test_stop(self, environment: Any, **_: Any) -> None:
        if self.owner is not None and not self.is_worker:
            self.owner.end_ts = time.time()
        load, self.load = self.load, None
        if load is not None:
            environment.events.request.remove_listener(load.on_request)
            data = load.stop()
            if self.is_worker:
                self.runner.send_message(LOADGEN_MESSAGE, {"mode": self.opts.mode, "data": data})
            elif self.owner is not None:
                self.owner.write_loadgen(self.opts.mode, data)
        if self.env.web_ui is not None and not self.is_worker and self.owner is not None:
            # Stop in the web UI ends the run as the end of a headless one does (drain, export, report);
            # headless runs keep doing it at `quitting`
            self._finishing = gevent.spawn(self._finish_stopped, self.owner)

    def _finish_stopped(self, owner: RunOwner) -> None:
        if self.is_master:
            # the workers' last samples came before they said they stopped, but their Locust counts come with
            # their next stats report (every WORKER_REPORT_INTERVAL): wait for it, as Locust's own quit does
            gevent.sleep(WORKER_REPORT_INTERVAL + 0.5)
        total = self.env.stats.total
        owner.finish(total.num_requests, total.num_failures)

    def on_samples(self, environment: Any, msg: Any, **_: Any) -> None:
        """Master: a worker's sample batch."""
        data = msg.data
        if self.owner is None:
            _log.warning("samples from worker %s arrived outside a test: dropped", data.get("proc"))
            return
        self.owner.write_samples(data["mode"], data["proc"], data["csv"], data["rows"])

    def on_loadgen(self, environment: Any, msg: Any, **_: Any) -> None:
        """Master: a worker's loadgen numbers at the end of its test."""
        if self.owner is not None:
            self.owner.write_loadgen(msg.data["mode"], msg.data["data"])

    def finish(self, stop_runner: bool = False) -> None:
        """Close the run folder of the current test (run owner)."""
        owner = self.owner
        if owner is None or owner.files is None:
            return
        if stop_runner and not self.is_master:
            self.runner.stop()  # Ctrl-C on a local run reaches `quitting` before the runner stops
        finishing = self._finishing
        if finishing is not None:
            finishing.join()  # Stop in the web UI is closing this run: wait for it, never close it twice
            return
        total = self.env.stats.total
        owner.finish(total.num_requests, total.num_failures)


_CAPTURE: Capture | None = None


def _on_parser(parser: Any, **_: Any) -> None:
    add_arguments(parser)


def _on_init(environment: Any, runner: Any = None, **_: Any) -> None:
    global _CAPTURE
    if environment.parsed_options is None or runner is None:
        return  # a library use of Environment without our arguments: nothing to capture
    parsed = environment.parsed_options
    if not parsed.shape:
        environment.shape_class = None  # StagesShape is always loaded; active only with --shape
    if parsed.arrival_rate > 0 and not isinstance(runner, WorkerRunner):
        # open model: a user is an arrival stream; by default one per load process, all started at once
        if parsed.num_users is None:
            parsed.num_users = (
                max(1, int(parsed.expect_workers or 1)) if isinstance(runner, MasterRunner) else 1
            )
        if parsed.spawn_rate is None:
            parsed.spawn_rate = min(100.0, float(parsed.num_users))
    try:
        capture = Capture(environment, runner)
    except ValueError as exc:
        sys.stderr.write(f"error: {exc} (see `locust -f loadtests/ --help`, group offload-bench)\n")
        sys.exit(2)
    _CAPTURE = capture
    # Locust's start-up heap (~50k objects) makes every full collection a ~10-40 ms stall of the load
    # generator, which the open model's corrected latency would charge to the server: freeze it once.
    gc.collect()
    gc.freeze()
    environment.events.test_start.add_listener(capture.on_test_start)
    environment.events.test_stop.add_listener(capture.on_test_stop)
    if capture.is_master:
        runner.quit = _patient_quit(runner)
        runner.register_message(SAMPLES_MESSAGE, capture.on_samples)
        runner.register_message(LOADGEN_MESSAGE, capture.on_loadgen)
    if environment.web_ui is not None and not capture.is_worker:
        _install_tab(environment, capture)
    if capture.is_worker:
        # Ctrl-C/SIGTERM on a worker: stop (test_stop sends the last batch) before the WorkerRunner's own
        # quitting listener, registered earlier and so called later, tells the master it quit
        environment.events.quitting.add_listener(lambda **_: runner.stop())


def _patient_quit(runner: Any) -> Any:
    """MasterRunner.quit, waiting for every live worker to say it quit (its last samples and stats came first)
    instead of a fixed 0.5 s; a worker that has gone missing is not waited for."""

    quitting = False

    def quit() -> None:
        nonlocal quitting
        if quitting:
            return  # the last worker's "quit" makes a headless master quit again, from inside the wait below
        quitting = True
        runner.stop(send_stop_to_client=False)
        for client in runner.clients.all:
            runner.server.send_to_client(Message("quit", None, client.id))  # type: ignore[no-untyped-call]
        deadline = time.monotonic() + QUIT_WAIT_S
        while time.monotonic() < deadline and any(c.state != STATE_MISSING for c in runner.clients.all):
            gevent.sleep(0.05)
        left = [c.id for c in runner.clients.all if c.state != STATE_MISSING]
        if left:
            _log.warning(
                "workers %s did not quit within %.0f s: their last samples may be missing", left, QUIT_WAIT_S
            )
        runner.greenlet.kill(block=True)

    return quit


def _install_tab(environment: Any, capture: Capture) -> None:
    try:
        from loadtests._webui import install  # analysis (numpy, pandas) only where a web UI runs
    except ImportError as exc:
        _log.warning("web UI: no Offload tab (%s)", exc)
        return
    install(environment, capture)


def _on_quitting(environment: Any, **_: Any) -> None:
    if _CAPTURE is not None and not _CAPTURE.is_worker:
        _CAPTURE.finish(stop_runner=True)


# Registered at import, i.e. before Locust creates the runner: `quitting` fires in reverse order, so ours runs
# after the MasterRunner's own listener has collected the workers' last messages.
_events: Any = events  # Locust's EventHook.add_listener is untyped
_events.init_command_line_parser.add_listener(_on_parser)
_events.init.add_listener(_on_init)
_events.quitting.add_listener(_on_quitting)


def current() -> Capture:
    """This process's Capture (after Locust's init event)."""
    if _CAPTURE is None:
        raise RuntimeError("loadtests capture not initialised: run through `locust -f loadtests/`")
    return _CAPTURE

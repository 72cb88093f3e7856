"""Wiring into Locust's events: run folder, raw-sample capture, loadgen files, job side, report.

Roles: a *load process* (local runner or worker) runs users and captures their samples; the *run owner*
(local runner or master) owns the run folder. Workers ship batches to the master over Locust's message channel.

Quit ordering (distributed): the master's runner.quit() fires test_stop on the master first, then tells the
workers to quit and waits 0.5 s for their last messages; each worker's stop() fires test_stop (we send the last
sample batch and loadgen numbers there) before its final stats report. So the master finishes the run folder
at `quitting`, whose listeners fire in reverse order: ours is registered at import, before the MasterRunner's,
so it runs after the runner has collected the workers' last messages.
"""

from __future__ import annotations

import gc
import logging
import sys
import time
from pathlib import Path
from typing import Any, Final

import gevent
from locust import events
from locust.runners import MasterRunner, WorkerRunner

from loadtests._arrivals import per_stream_cap
from loadtests._capture import SAMPLES_MESSAGE, Row, SampleBuffer, SampleFiles, job_ids, make_row
from loadtests._jobside import JobSide, connect
from loadtests._loadgen import LOADGEN_MESSAGE, LoadgenStats, write_loadgen
from loadtests._options import LoadOptions, add_arguments, load_options
from loadtests._runfolder import build_report, open_run_dir, start_patch
from runfolder.rundir import update_run_json

FLUSH_EVERY_S: Final = 0.5
_log = logging.getLogger("loadtests")
# gevent records the spawning greenlet and stack of every greenlet (debugging aid): ~15 us per spawn here,
# on every request of the open model
gevent.config.track_greenlet_tree = False


class Capture:
    """Per-process state of one test; created at Locust's init event."""

    def __init__(self, environment: Any, runner: Any) -> None:
        self.env = environment
        self.runner = runner
        self.is_master = isinstance(runner, MasterRunner)
        self.is_worker = isinstance(runner, WorkerRunner)
        self.opts: LoadOptions = load_options(environment.parsed_options)
        # load process side
        self.stats: LoadgenStats | None = None
        self.buffer: SampleBuffer | None = None
        self._ticker: gevent.Greenlet | None = None
        self._streams_started = 0
        # run owner side
        self.run_dir: Path | None = None
        self.created_run_dir = False
        self.files: SampleFiles | None = None
        self.jobside: JobSide | None = None
        self.start_ts = 0.0
        self.end_ts: float | None = None
        self.finished = True
        self.tests = 0

    @property
    def proc(self) -> str:
        """This load process's id: the worker index, or 0 for a local run."""
        return str(self.runner.worker_index) if self.is_worker else "0"

    def next_stream(self) -> tuple[int, int]:
        """(proc index, stream index in this process) of a new open-model user."""
        self._streams_started += 1
        return (max(0, int(self.proc)), self._streams_started - 1)

    def stream_cap(self) -> int:
        """Requests in flight one arrival stream may have."""
        return per_stream_cap(self.opts.max_in_flight, self.opts.streams)

    # --- test start -------------------------------------------------------------------------------------
    def on_test_start(self, environment: Any, **_: Any) -> None:
        parsed = environment.parsed_options
        if not self.is_worker:
            self.finish()  # a previous test of this process (web UI) gets its folder closed first
            # the arrival streams of the whole test: shipped to workers with the spawn message
            shaped = environment.shape_class is not None
            parsed.ob_streams = (
                int(parsed.num_users or 1) if shaped else max(1, self.runner.target_user_count)
            )
        self.opts = load_options(parsed)
        if not self.is_worker:
            self._begin_run()
        if not self.is_master:
            self._begin_load()

    def _begin_run(self) -> None:
        opts, parsed = self.opts, self.env.parsed_options
        self.tests += 1
        # only the first test of a process may use --run-dir: a later one (web UI) gets its own folder
        self.run_dir, self.created_run_dir = open_run_dir(opts.run_dir if self.tests == 1 else "")
        self.start_ts, self.end_ts, self.finished = time.time(), None, False
        processes = self.runner.worker_count if self.is_master else 1
        update_run_json(
            self.run_dir, start_patch(self.run_dir, opts, parsed, processes, self.start_ts, self.env.host)
        )
        self.files = SampleFiles(self.run_dir)
        self.jobside = None
        if opts.mode == "offload":
            client = connect(opts.redis_url)
            if client is not None:
                self.jobside = JobSide(client, self.run_dir, opts.mode)
        _log.info("run folder: %s (%s model, mode %s)", self.run_dir, opts.model, opts.mode)

    def _begin_load(self) -> None:
        opts, proc = self.opts, self.proc
        self.stats = LoadgenStats(proc=proc, model=opts.model, late_threshold_ms=opts.late_threshold_ms)
        self._streams_started = 0
        self.buffer = None
        if opts.capture:
            if self.is_worker:
                runner, mode = self.runner, opts.mode

                def sink(rows: list[Row]) -> None:
                    runner.send_message(SAMPLES_MESSAGE, {"mode": mode, "proc": proc, "rows": rows})
            else:
                files, mode = self.files, opts.mode
                assert files is not None

                def sink(rows: list[Row]) -> None:
                    files.write(mode, proc, rows)

            self.buffer = SampleBuffer(sink)
        self._ticker = gevent.spawn(self._tick)

    def _tick(self) -> None:
        stats, n = self.stats, 0
        assert stats is not None
        while True:
            gevent.sleep(FLUSH_EVERY_S)
            if self.buffer is not None:
                self.buffer.flush()
            n += 1
            if n % 2 == 0:
                stats.sample_cpu()
                stats.warn_if_behind()

    # --- requests ---------------------------------------------------------------------------------------
    def on_request(self, **meta: Any) -> None:
        buffer = self.buffer
        if buffer is not None:
            opts = self.opts
            buffer.add(make_row(meta, opts.mode, opts.model, self.proc))

    # --- test stop --------------------------------------------------------------------------------------
    def on_test_stop(self, environment: Any, **_: Any) -> None:
        if not self.is_worker:
            self.end_ts = time.time()
        if self.is_master or self.stats is None:
            return
        if self._ticker is not None:
            self._ticker.kill(block=True)
            self._ticker = None
        self.stats.sample_cpu()
        if self.opts.model == "open":
            st = self.stats
            _log.info(
                "open model (proc %s): %d arrivals scheduled, %d sent, %d late, %d dropped",
                st.proc,
                st.scheduled,
                st.sent,
                st.late,
                st.dropped,
            )
        if self.buffer is not None:
            self.buffer.flush()
            self.buffer = None
        data = self.stats.as_dict()
        if self.is_worker:
            self.runner.send_message(LOADGEN_MESSAGE, {"mode": self.opts.mode, "data": data})
        elif self.run_dir is not None:
            write_loadgen(self.run_dir, self.opts.mode, data)
        self.stats = None

    # --- master: messages from workers ------------------------------------------------------------------
    def on_samples(self, environment: Any, msg: Any, **_: Any) -> None:
        if self.files is None:
            _log.warning("samples from worker %s arrived outside a test: dropped", msg.data.get("proc"))
            return
        self.files.write(msg.data["mode"], msg.data["proc"], msg.data["rows"])

    def on_loadgen(self, environment: Any, msg: Any, **_: Any) -> None:
        if self.run_dir is not None:
            write_loadgen(self.run_dir, msg.data["mode"], msg.data["data"])

    # --- the end ----------------------------------------------------------------------------------------
    def finish(self, stop_runner: bool = False) -> None:
        """Close the run folder of the current test (run owner): drain, export jobs, run.json, report."""
        if self.finished or self.run_dir is None or self.files is None:
            return
        self.finished = True
        if stop_runner and not self.is_master:
            self.runner.stop()  # Ctrl-C on a local run reaches `quitting` before the runner stops
        opts, run_dir, files = self.opts, self.run_dir, self.files
        end_ts = self.end_ts or time.time()
        patch_mode: dict[str, Any] = {}
        if self.jobside is not None:
            jobside, self.jobside = self.jobside, None
            drain_s = jobside.drain(opts.drain_timeout_s)
            jobside.stop()
            exported = jobside.export(job_ids(files.paths(opts.mode)))
            jobside.close()
            patch_mode.update(drain_s=drain_s, jobs_exported=exported)
        total = self.env.stats.total
        samples = files.count(opts.mode)
        files.close()
        self.files = None  # a worker batch arriving after this is reported, not written to a closed file
        patch_mode.update(
            start_ts=self.start_ts,
            end_ts=end_ts,
            host=self.env.host,
            locust_requests=total.num_requests,
            locust_failures=total.num_failures,
            samples=samples,
        )
        patch: dict[str, Any] = {"modes": {opts.mode: patch_mode}}
        if self.created_run_dir:
            patch["status"] = "complete"
        update_run_json(run_dir, patch)
        if opts.capture and samples != total.num_requests:
            _log.warning("captured %d samples but Locust counted %d requests", samples, total.num_requests)
        _log.info("run folder complete: %s (%d samples)", run_dir, samples)
        if self.created_run_dir:
            build_report(run_dir)


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
    environment.events.request.add_listener(capture.on_request)
    if capture.is_master:
        runner.register_message(SAMPLES_MESSAGE, capture.on_samples)
        runner.register_message(LOADGEN_MESSAGE, capture.on_loadgen)
    if capture.is_worker:
        # Ctrl-C/SIGTERM on a worker: stop (test_stop sends the last batch) before the WorkerRunner's own
        # quitting listener, registered earlier and so called later, tells the master it quit
        environment.events.quitting.add_listener(lambda **_: runner.stop())


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

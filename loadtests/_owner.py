"""The run-owner role (local runner or Locust master): the run folder of one test, from start to report."""

from __future__ import annotations

import logging
import time
from typing import Any

from loadtests._capture import SampleFiles
from loadtests._jobside import JobSide, connect
from loadtests._loadgen import write_loadgen
from loadtests._options import LoadOptions
from loadtests._runfolder import build_report, open_run_dir, start_patch
from loadtests._target import load as load_target
from runfolder.rundir import update_run_json

_log = logging.getLogger("loadtests")


class RunOwner:
    """Owns one test's run folder: run.json, the sample files of every load process, the job side, the report."""

    def __init__(
        self, opts: LoadOptions, parsed: Any, given_dir: str, processes: int, host: str | None
    ) -> None:
        self.opts = opts
        self.host = host
        self.run_dir, self.created_run_dir = open_run_dir(given_dir)
        self.start_ts = time.time()
        self.end_ts: float | None = None
        self.done = False  # finish() returned: the run folder is complete (and its report built, when ours)
        update_run_json(self.run_dir, start_patch(self.run_dir, opts, parsed, processes, self.start_ts, host))
        self.files: SampleFiles | None = SampleFiles(self.run_dir)
        self.jobside: JobSide | None = None
        if opts.job_mode:  # the target's answers carry job ids: learn their fates with its tracker
            tracker = connect(load_target(opts.target)[0], opts.redis_url, host or "")
            if tracker is not None:
                self.jobside = JobSide(tracker, self.run_dir, opts.mode)
        _log.info("run folder: %s (%s model, mode %s)", self.run_dir, opts.model, opts.mode)

    def write_samples(self, mode: str, proc: str, text: str, rows: int) -> None:
        """Append a load process's sample batch (CSV text of `rows` rows)."""
        if self.files is None:
            _log.warning(
                "%d samples from load process %s arrived after the run folder closed: dropped", rows, proc
            )
            return
        self.files.write(mode, proc, text, rows)

    def write_loadgen(self, mode: str, data: dict[str, Any]) -> None:
        """Write a load process's loadgen numbers."""
        write_loadgen(self.run_dir, mode, data)

    def finish(self, locust_requests: int, locust_failures: int) -> None:
        """Close the run folder: drain the job backlog, export jobs, complete run.json, build the report."""
        files = self.files
        if files is None:
            return
        try:
            self._finish(files, locust_requests, locust_failures)
        finally:
            self.done = True

    def _finish(self, files: SampleFiles, locust_requests: int, locust_failures: int) -> None:
        opts, run_dir = self.opts, self.run_dir
        end_ts = self.end_ts or time.time()
        patch_mode: dict[str, Any] = {}
        if self.jobside is not None:
            jobside, self.jobside = self.jobside, None
            drain_s = jobside.drain(opts.drain_timeout_s)
            jobside.stop()
            exported = jobside.export(files.paths(opts.mode), opts.drain_timeout_s)
            jobside.close()
            patch_mode.update(drain_s=drain_s, jobs_exported=exported, tracker=jobside.info())
        samples = files.count(opts.mode)
        files.close()
        self.files = None  # a worker batch arriving after this is reported, not written to a closed file
        patch_mode.update(
            start_ts=self.start_ts,
            end_ts=end_ts,
            host=self.host,
            locust_requests=locust_requests,
            locust_failures=locust_failures,
            samples=samples,
        )
        patch: dict[str, Any] = {"modes": {opts.mode: patch_mode}}
        if self.created_run_dir:
            patch["status"] = "complete"
        update_run_json(run_dir, patch)
        if opts.capture and samples != locust_requests:
            _log.warning("captured %d samples but Locust counted %d requests", samples, locust_requests)
        _log.info("run folder complete: %s (%d samples)", run_dir, samples)
        if self.created_run_dir:
            build_report(run_dir)

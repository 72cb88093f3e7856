"""The job side of a run with job ids: queue depth about once a second, a bounded drain wait, job export.

What a job's fate is comes from the target's tracker (targets.trackers: arq keys, a status URL, the sample
service's records, or none). Runs on the master (or the local runner) only, with sync clients (gevent-patched
sockets).
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Final

import gevent
import redis

from runfolder.redact import redact
from runfolder.schema import JOBS_DIR, QUEUE_COLUMNS, QUEUE_DIR, SAMPLE_COLUMNS
from targets import Target
from targets.trackers import Tracker, make_tracker

SAMPLE_EVERY_S: Final = 1.0
_JOB_ID: Final = SAMPLE_COLUMNS.index("job_id")
_START: Final = SAMPLE_COLUMNS.index("start_ts")
_LATENCY: Final = SAMPLE_COLUMNS.index("latency_ms")
_STATUS: Final = SAMPLE_COLUMNS.index("status")
_log = logging.getLogger("loadtests")


def connect(target: Target, redis_url: str, host: str) -> Tracker | None:
    """The target's tracker, ready to read (a Redis one after a PING); None when it cannot (logged once)."""
    jobs = target.jobs
    if jobs.tracker not in ("http", "none") and not redis_url:  # every other tracker reads Redis
        _log.warning("no --redis-url / REDIS_URL: queue depth and job records are not captured")
        return None
    try:
        tracker = make_tracker(jobs, redis_url, host)
    except ImportError as exc:
        _log.warning("the %s tracker is not usable (%s): job side skipped", jobs.tracker, exc)
        return None
    client = getattr(tracker, "client", None)
    if isinstance(client, redis.Redis):
        try:
            client.ping()
        except (redis.RedisError, OSError) as exc:
            _log.warning(
                "Redis at %s unreachable (%s): queue depth and job records are not captured",
                redact(redis_url),  # the URL carries the password (issue 14.9)
                redact(str(exc)),
            )
            tracker.close()
            return None
    return tracker


def backlog(depth: dict[str, int]) -> int:
    """Jobs not finished yet: ready + deferred (retrying) + in progress."""
    return depth["ready"] + depth["deferred"] + depth["in_progress"]


def accepted_jobs(paths: list[Path]) -> Iterator[tuple[str, float]]:
    """(job id, when the API answered) of the 2xx answers in sample files, streamed."""
    for path in paths:
        with path.open(newline="") as fh:
            reader = csv.reader(fh)
            next(reader, None)
            for row in reader:
                if len(row) > _JOB_ID and row[_JOB_ID] and row[_STATUS].startswith("2"):
                    yield row[_JOB_ID], float(row[_START]) + float(row[_LATENCY]) / 1000.0


class JobSide:
    """Samples queue/<mode>.csv in a greenlet (when the tracker sees a queue); exports jobs/<mode>.jsonl."""

    def __init__(self, tracker: Tracker, run_dir: Path, mode: str) -> None:
        self.tracker = tracker
        self.mode = mode
        self.run_dir = run_dir
        self._fh: IO[str] | None = None
        self._greenlet: gevent.Greenlet | None = None
        # the first and the latest depth sample of the run (the web UI's live job counts)
        self.first: dict[str, int] | None = None
        self.last: dict[str, int] | None = None
        if self._depth() is None:
            return  # a status URL shows no queue: no queue file
        path = run_dir / QUEUE_DIR / f"{mode}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = path.open("w", newline="")
        self._writer = csv.writer(self._fh)
        self._writer.writerow(QUEUE_COLUMNS)
        self._greenlet = gevent.spawn(self._sample_loop)

    def _depth(self) -> dict[str, int] | None:
        try:
            return self.tracker.depth()
        except (redis.RedisError, OSError) as exc:
            _log.warning("queue depth sample failed: %s", exc)
            return {}

    def sample(self) -> dict[str, int] | None:
        """Take one queue-depth sample and write it; None when Redis did not answer (logged, not fatal)."""
        depth = self._depth()
        if not depth or self._fh is None:
            return None
        self.last = depth
        if self.first is None:
            self.first = depth
        self._writer.writerow([round(time.time(), 3), *(depth[c] for c in QUEUE_COLUMNS[1:])])
        self._fh.flush()
        return depth

    def _sample_loop(self) -> None:
        while True:
            started = time.monotonic()
            self.sample()
            gevent.sleep(max(0.0, SAMPLE_EVERY_S - (time.monotonic() - started)))

    def drain(self, timeout_s: float) -> float | None:
        """Wait until the backlog is empty or timeout_s passes; seconds waited, None if not drained or unseen."""
        if self._greenlet is None:
            return None  # no queue to watch: the tracker's export waits for the jobs itself
        self._greenlet.kill(block=True)  # the drain loop samples (every 0.5 s) from here on
        started = time.monotonic()
        next_log_s = 0.0
        while True:
            depth = self.sample()
            waited_s = time.monotonic() - started
            if depth is not None and backlog(depth) == 0:
                return waited_s
            if waited_s >= timeout_s:
                _log.warning("job backlog not drained after %.0f s (%s)", timeout_s, describe(depth))
                return None
            if waited_s >= next_log_s:  # progress for a wait that can last --drain-timeout-s
                _log.info(
                    "draining the job backlog (%.0f of %.0f s): %s", waited_s, timeout_s, describe(depth)
                )
                next_log_s += 5.0
            gevent.sleep(0.5)

    def stop(self) -> None:
        """Stop sampling (after one last sample) and close the queue file."""
        if self._greenlet is not None:
            self._greenlet.kill(block=True)
            self.sample()
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def export(self, sample_paths: list[Path], timeout_s: float = 0.0) -> int:
        """Write jobs/<mode>.jsonl for the accepted jobs in sample_paths; the number of records written."""
        accepted = dict(accepted_jobs(sample_paths))
        path = self.run_dir / JOBS_DIR / f"{self.mode}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        n = 0
        with path.open("w") as fh:
            try:
                for record in self.tracker.export(accepted, accepted, timeout_s):
                    fh.write(json.dumps(record, separators=(",", ":")) + "\n")
                    n += 1
            except (redis.RedisError, OSError) as exc:
                _log.warning("job export stopped after %d records: %s", n, exc)
        for note in self.tracker.notes:
            _log.warning("%s", note)
        return n

    def info(self) -> dict[str, Any]:
        """What run.json records about the tracker: its name and what it could not know."""
        return {"name": self.tracker.name, "notes": list(self.tracker.notes)}

    def close(self) -> None:
        """Release the tracker's connections."""
        self.tracker.close()


def describe(depth: dict[str, Any] | None) -> str:
    """One-line text of a queue depth sample."""
    if not depth:
        return "unknown"
    return ", ".join(f"{k}={depth[k]}" for k in QUEUE_COLUMNS[1:])

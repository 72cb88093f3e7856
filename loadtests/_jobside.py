"""The job side of an offload run: queue depth about once a second, a bounded drain wait, job export.

Runs on the master (or the local runner) only, with the sync redis-py client (gevent-patched sockets).
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any, Final

import gevent
import redis

from runfolder.schema import JOB_KEYS, JOBS_DIR, QUEUE_COLUMNS, QUEUE_DIR

SAMPLE_EVERY_S: Final = 1.0
_log = logging.getLogger("loadtests")


def connect(redis_url: str) -> redis.Redis | None:
    """A client of redis_url after a successful PING, else None (logged once: the job side is skipped)."""
    if not redis_url:
        _log.warning("no --redis-url / REDIS_URL: queue depth and job records are not captured")
        return None
    try:
        import service.lifecycle  # noqa: F401  (the readers of the worker's records)
    except ImportError as exc:
        _log.warning("service.lifecycle is not importable (%s): job side skipped", exc)
        return None
    client = redis.Redis.from_url(redis_url, socket_timeout=2.0, socket_connect_timeout=1.0)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        _log.warning(
            "Redis at %s unreachable (%s): queue depth and job records are not captured", redis_url, exc
        )
        client.close()
        return None
    return client


def backlog(depth: dict[str, int]) -> int:
    """Jobs not finished yet: ready + deferred (retrying) + in progress."""
    return depth["ready"] + depth["deferred"] + depth["in_progress"]


class JobSide:
    """Samples queue/<mode>.csv in a greenlet; drains and exports jobs/<mode>.jsonl at the end."""

    def __init__(self, client: redis.Redis, run_dir: Path, mode: str) -> None:
        self.client = client
        self.mode = mode
        self.run_dir = run_dir
        path = run_dir / QUEUE_DIR / f"{mode}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] = path.open("w", newline="")
        self._writer = csv.writer(self._fh)
        self._writer.writerow(QUEUE_COLUMNS)
        self._greenlet = gevent.spawn(self._sample_loop)

    def sample(self) -> dict[str, int] | None:
        """Take one queue-depth sample and write it; None when Redis did not answer (logged, not fatal)."""
        from service.lifecycle import queue_depth

        try:
            depth = queue_depth(self.client)
        except (redis.RedisError, OSError) as exc:
            _log.warning("queue depth sample failed: %s", exc)
            return None
        self._writer.writerow([round(time.time(), 3), *(depth[c] for c in QUEUE_COLUMNS[1:])])
        self._fh.flush()
        return depth

    def _sample_loop(self) -> None:
        while True:
            started = time.monotonic()
            self.sample()
            gevent.sleep(max(0.0, SAMPLE_EVERY_S - (time.monotonic() - started)))

    def drain(self, timeout_s: float) -> float | None:
        """Wait until the backlog is empty or timeout_s passes; seconds waited, None if not drained."""
        self._greenlet.kill(block=True)  # the drain loop samples (every 0.5 s) from here on
        started = time.monotonic()
        next_log_s = 0.0
        while True:
            depth = self.sample()
            waited_s = time.monotonic() - started
            if depth is not None and backlog(depth) == 0:
                return waited_s
            if waited_s >= timeout_s:
                _log.warning("offload backlog not drained after %.0f s (%s)", timeout_s, describe(depth))
                return None
            if waited_s >= next_log_s:  # progress for a wait that can last --drain-timeout-s
                _log.info(
                    "draining the offload backlog (%.0f of %.0f s): %s", waited_s, timeout_s, describe(depth)
                )
                next_log_s += 5.0
            gevent.sleep(0.5)

    def stop(self) -> None:
        """Stop sampling (after one last sample) and close the queue file."""
        self._greenlet.kill(block=True)
        self.sample()
        self._fh.close()

    def export(self, job_ids: Iterable[str]) -> int:
        """Write jobs/<mode>.jsonl for job_ids (streamed); the number of records written."""
        from service.lifecycle import export_records

        path = self.run_dir / JOBS_DIR / f"{self.mode}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        n = 0
        with path.open("w") as fh:
            try:
                for record in export_records(self.client, job_ids):
                    # the service's own record -> the run-folder contract (service/ knows nothing of it)
                    row = {k: record.get(k) for k in JOB_KEYS}
                    fh.write(json.dumps(row, separators=(",", ":")) + "\n")
                    n += 1
            except (redis.RedisError, OSError) as exc:
                _log.warning("job export stopped after %d records: %s", n, exc)
        return n

    def close(self) -> None:
        """Close the Redis client."""
        self.client.close()


def describe(depth: dict[str, Any] | None) -> str:
    """One-line text of a queue depth sample."""
    if not depth:
        return "unknown"
    return ", ".join(f"{k}={depth[k]}" for k in QUEUE_COLUMNS[1:])

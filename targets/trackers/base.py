"""What every tracker offers: queue depth now, and one record per accepted job in the run-folder shape."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

from runfolder.schema import JOB_KEYS

DEPTH_KEYS = ("ready", "deferred", "in_progress", "dlq", "completed")
# pending | running | done | dead (failed for good) | missing (accepted, found nowhere: lost) |
# unknown (the tracker cannot know: no result kept, results expired, or tracker "none")
STATES = ("pending", "running", "done", "dead", "missing", "unknown")


class Tracker(Protocol):
    """Learns each accepted job's fate from what the worker already writes."""

    name: str
    notes: list[str]  # what the export could not know and why, for run.json and the report

    def depth(self) -> dict[str, int] | None:
        """Queue depth now (DEPTH_KEYS), or None when this tracker cannot see a queue."""
        ...

    def export(
        self, job_ids: Iterable[str], accepted_ts: Mapping[str, float], timeout_s: float
    ) -> Iterator[dict[str, Any]]:
        """One JOB_KEYS record per job id; accepted_ts: when the API answered (for trackers that need it)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def job_record(
    job_id: str,
    state: str,
    *,
    enqueued_ts: float | None = None,
    attempts: list[dict[str, Any]] | None = None,
    done_ts: float | None = None,
    dead_ts: float | None = None,
    executions: int = 0,
    source_id: str | None = None,
    redrives: int = 0,
) -> dict[str, Any]:
    """A record in the run folder's jobs/<mode>.jsonl shape (runfolder.schema.JOB_KEYS order)."""
    rec = {
        "job_id": job_id,
        "source_id": source_id,
        "enqueued_ts": enqueued_ts,
        "state": state,
        "attempts": attempts or [],
        "done_ts": done_ts,
        "dead_ts": dead_ts,
        "redrives": redrives,
        "executions": executions,
    }
    return {k: rec[k] for k in JOB_KEYS}


def attempt(
    job_try: int, start_ts: float | None, end_ts: float | None, outcome: str | None, error: str | None
) -> dict[str, Any]:
    """One attempt entry of a job record."""
    return {"try": job_try, "start_ts": start_ts, "end_ts": end_ts, "outcome": outcome, "error": error}


class NoTracker:
    """tracker = "none": no queue to see; every accepted job's fate is unknown (reported, never hidden)."""

    name = "none"

    def __init__(self) -> None:
        self.notes: list[str] = []

    def depth(self) -> dict[str, int] | None:
        """No queue is visible."""
        return None

    def export(
        self, job_ids: Iterable[str], accepted_ts: Mapping[str, float], timeout_s: float
    ) -> Iterator[dict[str, Any]]:
        """Every job: state unknown."""
        n = 0
        for job_id in job_ids:
            n += 1
            yield job_record(job_id, "unknown", enqueued_ts=accepted_ts.get(job_id))
        if n:
            self.notes.append(f'tracker "none": the fate of {n} accepted job(s) is unknown')

    def close(self) -> None:
        """Nothing to release."""

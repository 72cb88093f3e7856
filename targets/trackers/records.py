"""The records tracker: the sample service's own lifecycle records (per attempt, retries, DLQ, re-runs)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import redis

from runfolder.schema import JOB_KEYS


class RecordsTracker:
    """Reads what service.lifecycle writes; imported lazily so a user's target never needs our service."""

    name = "records"

    def __init__(self, client: redis.Redis, queue: str = "arq:queue") -> None:
        import service.lifecycle  # noqa: F401  (fail here, at start, when the service is not importable)

        self.client = client
        self.queue = queue
        self.notes: list[str] = []

    def depth(self) -> dict[str, int]:
        """ready, deferred, in_progress, dlq, completed in one round trip."""
        from service.lifecycle import queue_depth

        return queue_depth(self.client, self.queue)

    def export(
        self, job_ids: Iterable[str], accepted_ts: Mapping[str, float], timeout_s: float = 0.0
    ) -> Iterator[dict[str, Any]]:
        """The service's record of each job, mapped onto the run folder's JOB_KEYS."""
        from service.lifecycle import export_records

        for record in export_records(self.client, job_ids):
            yield {k: record.get(k) for k in JOB_KEYS}

    def close(self) -> None:
        """Close the Redis client."""
        self.client.close()

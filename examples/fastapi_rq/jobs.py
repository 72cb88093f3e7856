"""The job RQ's stock worker runs (`rq worker`, from this folder: it imports `jobs.divide` by name)."""

from __future__ import annotations

import work


def divide(x: float, y: float, username: str) -> float:
    """The offloaded job: the same work the sync route does inline."""
    return work.divide(x, y)

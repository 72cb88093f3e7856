"""Trackers: how each accepted job's fate is learnt (arq keys, a status URL, our service's records, none)."""

from __future__ import annotations

import redis

from targets.model import Jobs
from targets.trackers.arq import ArqTracker
from targets.trackers.base import DEPTH_KEYS, STATES, NoTracker, Tracker, job_record
from targets.trackers.http import HttpTracker
from targets.trackers.records import RecordsTracker

__all__ = [
    "DEPTH_KEYS", "STATES", "ArqTracker", "HttpTracker", "NoTracker", "RecordsTracker", "Tracker",
    "job_record", "make_tracker",
]  # fmt: skip


def make_tracker(jobs: Jobs, redis_url: str | None, api_url: str) -> Tracker:
    """The tracker [jobs] asks for; ValueError (one line) when it needs a Redis URL and has none."""
    if jobs.tracker == "http":
        return HttpTracker(api_url, jobs)
    if jobs.tracker == "none":
        return NoTracker()
    if not redis_url:
        raise ValueError(f'tracker "{jobs.tracker}" reads Redis: give --redis-url (or REDIS_URL)')
    client = redis.Redis.from_url(redis_url, socket_timeout=5.0, socket_connect_timeout=2.0)
    if jobs.tracker == "arq":
        return ArqTracker(client, jobs.queue)
    return RecordsTracker(client, jobs.queue)

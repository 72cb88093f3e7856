"""Trackers: how each accepted job's fate is learnt (arq or RQ keys, a status URL, our service's records, none)."""

from __future__ import annotations

import importlib.util
from typing import Final
from urllib.parse import urlsplit

import redis

from targets import placeholders as ph
from targets.model import Jobs
from targets.trackers.arq import ArqTracker
from targets.trackers.base import DEPTH_KEYS, STATES, NoTracker, Tracker, job_record
from targets.trackers.http import HttpTracker
from targets.trackers.records import RecordsTracker

__all__ = [
    "DEPTH_KEYS", "STATES", "ArqTracker", "HttpTracker", "NoTracker", "RecordsTracker", "Tracker",
    "check_library", "job_record", "make_tracker",
]  # fmt: skip

# trackers that need a queue library beyond the base install: tracker -> (module, extra)
LIBRARIES: Final = {
    "rq": ("rq", "rq"),
    "saq": ("saq", "saq"),
    "celery": ("celery", "celery"),
    "dramatiq": ("dramatiq", "dramatiq"),
}


class MissingLibrary(ImportError):
    """The tracker's queue library is not installed; the message is the one line to show, with the fix."""


def check_library(tracker: str) -> None:
    """MissingLibrary (one line with the pip command) when the tracker's queue library is not installed."""
    if tracker not in LIBRARIES:
        return
    module, extra = LIBRARIES[tracker]
    if importlib.util.find_spec(module) is None:
        raise MissingLibrary(f"tracker \"{tracker}\" needs: pip install 'offload-bench[{extra}]'")


def _library_url(template: str, run_url: str | None) -> str:
    """[jobs] redis_url with the run's Redis placeholders expanded."""
    parts = urlsplit(run_url or "")
    values = {
        "redis_url": run_url or "",
        "redis_host": parts.hostname or "",
        "redis_port": str(parts.port or ""),
        "redis_password": parts.password or "",
    }
    needed = [n for n in ph.names(template) if n in values]
    if needed and not run_url:
        raise ValueError(f"[jobs] redis_url uses {{{needed[0]}}}: give --redis-url (or REDIS_URL)")
    return ph.expand(template, values)


def make_tracker(jobs: Jobs, redis_url: str | None, api_url: str) -> Tracker:
    """The tracker [jobs] asks for; ValueError (one line) when it needs a Redis URL and has none,
    MissingLibrary (an ImportError) when its queue library is not installed."""
    if jobs.tracker == "http":
        return HttpTracker(api_url, jobs)
    if jobs.tracker == "none":
        return NoTracker()
    check_library(jobs.tracker)
    if jobs.redis_url:
        redis_url = _library_url(jobs.redis_url, redis_url)
    if not redis_url:
        raise ValueError(f'tracker "{jobs.tracker}" reads Redis: give --redis-url (or REDIS_URL)')
    client = redis.Redis.from_url(redis_url, socket_timeout=5.0, socket_connect_timeout=2.0)
    if jobs.tracker == "arq":
        return ArqTracker(client, jobs.queue)
    if jobs.tracker == "rq":
        from targets.trackers.rq import RqTracker  # imports rq: only when its tracker is used

        return RqTracker(client, jobs.queue)
    if jobs.tracker == "celery":
        from targets.trackers.celery import CeleryTracker  # imports celery: only when its tracker is used

        # a [jobs] without queue means Celery's default queue, "celery"
        return CeleryTracker(client, jobs.queue if "queue" in jobs.model_fields_set else "celery")
    if jobs.tracker == "saq":
        from targets.trackers.saq import SaqTracker  # imports saq: only when its tracker is used

        return SaqTracker(client, jobs.queue)
    if jobs.tracker == "dramatiq":
        from targets.trackers.dramatiq import (
            DramatiqTracker,
        )  # imports dramatiq: only when its tracker is used

        return DramatiqTracker(client, jobs.queue)
    return RecordsTracker(client, jobs.queue)

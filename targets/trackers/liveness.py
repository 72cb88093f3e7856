"""How many workers of a queue library are up, from what the library itself keeps in Redis (issue 21).

The stack waits until this count reaches the number of worker commands it started (one worker = one command,
whatever the library), so neither the load nor a fault starts before the library's worker can take a job:
- rq: the worker registry `rq:workers:<queue>` (RQ's `Worker.count`), written by `register_birth` before the
  work loop; a worker that died without `register_death` stays listed until its hash expires (worker_ttl + 60 s).
- saq: the zset `saq:<queue>:stats` (a member per worker id, scored with its info's expiry in ms), written by the
  worker's first upkeep at start and every `timers.worker_info` (10 s) after; members past their expiry are not
  counted.
- dramatiq: the zset `dramatiq:__heartbeats__` (member: a broker id, score: its last call, in ms), written by
  every call of a broker: a worker process's consumer beats about once a second from its start. Counted over
  Dramatiq's own heartbeat_timeout (60 s). The API's broker beats too once it has enqueued, so the count is a
  readiness signal at start, not a census under load.
- celery: Celery keeps no worker record in Redis (its events and gossip are pub/sub, and the pidbox binding
  `_kombu.binding.celery.pidbox` outlives a dead worker and holds one member per node name, shared by two
  workers of one host); the fallback is Celery's own liveness check, `celery inspect ping`
  (`app.control.ping`): each worker's event loop answers, and an answer means its consumers are set up.
Other trackers: None (nothing the library keeps says so; the built-in ones are checked by the stack itself).
"""

from __future__ import annotations

import contextlib
import time
from typing import Final, cast

import redis

from targets.model import Jobs
from targets.trackers import _library_url

LIBRARIES: Final = ("rq", "saq", "dramatiq", "celery")
DRAMATIQ_HEARTBEAT_TIMEOUT_MS: Final = 60_000  # RedisBroker's DEFAULT_HEARTBEAT_TIMEOUT
CELERY_PING_S: Final = 1.0  # how long one ping waits for answers (it returns at once when all have answered)


def _rq(client: redis.Redis, queue: str) -> int:
    from rq import Queue, Worker

    return int(Worker.count(connection=client, queue=Queue(queue, connection=client)))


def _saq(client: redis.Redis, queue: str) -> int:
    return cast(int, client.zcount(f"saq:{queue}:stats", time.time() * 1000, "+inf"))


def _dramatiq(client: redis.Redis) -> int:
    from targets.trackers.dramatiq import NAMESPACE  # RedisBroker's default namespace, "dramatiq"

    since = time.time() * 1000 - DRAMATIQ_HEARTBEAT_TIMEOUT_MS
    return cast(int, client.zcount(f"{NAMESPACE}:__heartbeats__", since, "+inf"))


def _celery(redis_url: str, expected: int) -> int:
    from celery import Celery  # type: ignore[import-untyped]
    from kombu.exceptions import KombuError  # type: ignore[import-untyped]

    app = Celery("offload-bench-liveness", broker=redis_url, set_as_current=False)
    try:
        replies = app.control.ping(timeout=CELERY_PING_S, limit=max(1, expected))
    except (KombuError, OSError) as exc:
        raise redis.ConnectionError(str(exc)) from None
    finally:
        with contextlib.suppress(Exception):
            app.close()
    return len(replies or [])


def live_workers(jobs: Jobs, run_redis_url: str, expected: int = 1) -> int | None:
    """Workers of [jobs]' library that show they are up (None: the library keeps no such sign).

    run_redis_url: the run's Redis ([jobs] redis_url, when given, names the library's); expected: how many the
    caller waits for (a Celery ping returns as soon as that many have answered). Raises redis.RedisError when
    Redis does not answer.
    """
    tracker, queue = jobs.tracker, jobs.queue
    if tracker not in LIBRARIES:
        return None
    redis_url = _library_url(jobs.redis_url, run_redis_url) if jobs.redis_url else run_redis_url
    try:
        return _count(tracker, redis_url, queue, expected)
    except ImportError:  # the library is not installed where the harness runs (the run refuses it earlier)
        return None


def _count(tracker: str, redis_url: str, queue: str, expected: int) -> int:
    if tracker == "celery":
        return _celery(redis_url, expected)
    client = redis.Redis.from_url(redis_url, socket_timeout=1, socket_connect_timeout=1)
    try:
        if tracker == "rq":
            return _rq(client, queue)
        if tracker == "saq":
            return _saq(client, queue)
        return _dramatiq(client)
    finally:
        client.close()

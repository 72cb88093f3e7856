"""capacity's backlog (StepStack.queue_length) for a queue library other than arq: the tracker's own depth, on a
real Redis (issue 21: capacity judges any library's backlog the same way)."""

from __future__ import annotations

from types import SimpleNamespace

import redis
from rq import Queue

from bench.capacity.stackrun import StepStack
from targets import Jobs


def _length(jobs: Jobs, redis_url: str | None) -> int | None:
    # the method reads only the target's [jobs], the Redis URL and the host: no stack needed
    return StepStack.queue_length(
        SimpleNamespace(target=SimpleNamespace(jobs=jobs), redis_url=redis_url, host="")
    )  # type: ignore[arg-type]


def test_an_rq_backlog_is_counted_from_the_rq_tracker(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    queue = Queue("bench", connection=client)
    for i in range(3):
        queue.enqueue("builtins.print", i)  # no worker: all three wait
    jobs = Jobs(tracker="rq", queue="bench")
    assert _length(jobs, redis_url) == 3
    queue.empty()
    assert _length(jobs, redis_url) == 0
    assert _length(jobs, None) is None  # no Redis to watch
    assert _length(Jobs(tracker="none"), redis_url) is None
    client.close()

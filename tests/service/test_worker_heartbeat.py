"""A worker's heartbeat is one member of the ob:workers zset (what /healthz reads) and one field of the
ob:workers:lag hash (its loop lag, issue 25), no key of its own (issue 14.6)."""

from __future__ import annotations

import redis

from service import keys
from service.lifecycle import live_workers
from tests.service import test_worker as support
from tests.service.test_worker import wait_for

start_worker = support.start_worker


def test_the_heartbeat_is_one_zset_member_written_while_up_and_removed_at_exit(
    client: redis.Redis, start_worker
) -> None:  # type: ignore[no-untyped-def]
    worker = start_worker()
    wait_for(lambda: live_workers(client) == 1, 30, "the worker's first heartbeat", worker)
    (member,) = client.zrange(keys.WORKERS, 0, -1)
    before = set(client.scan_iter(match=f"{keys.PREFIX}:*", count=1000))
    # no per-worker key to SCAN for
    assert before == {keys.WORKERS.encode(), keys.WORKERS_LAG.encode()}, before
    assert client.hkeys(keys.WORKERS_LAG) == [member]
    assert worker.signal_and_wait() == 0
    assert live_workers(client) == 0 and client.zscore(keys.WORKERS, member) is None
    assert client.hget(keys.WORKERS_LAG, member) is None
    assert not any(k.startswith(f"{keys.PREFIX}:worker:".encode()) for k in client.scan_iter(count=1000))

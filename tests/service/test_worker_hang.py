"""A hung Redis (up, accepting connections, not answering: SIGSTOP) against the real worker (issue 14.5):
a SIGTERM still ends the worker within its grace + a fixed margin, and the job it could not finish runs
again once Redis answers (at-least-once), never lost."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
import redis

from bench.launch.redis_server import EmbeddedRedis
from service.worker_runtime import SHUTDOWN_MARGIN_S
from tests.service.test_worker import all_in_state, enqueue, launch_worker, records, wait_for

GRACE_S = 1.0


def test_sigterm_during_a_redis_hang_exits_in_bounded_time_and_the_job_reruns(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis").start()
    client = redis.Redis.from_url(server.url)
    env = {
        "OFFLOAD_PAGES": "1",
        "OFFLOAD_IO_MS": "1500",
        "OFFLOAD_IO_SIGMA": "0",
        "OFFLOAD_JOB_TIMEOUT_S": "3",
        "OFFLOAD_ORPHAN_MARGIN_S": "1",
        "OFFLOAD_SHUTDOWN_GRACE_S": str(GRACE_S),
    }
    workers = []
    assert server.proc is not None
    try:
        [job_id] = enqueue(server.url, ["hang"])
        first = launch_worker(server.url, tmp_path, **env)
        workers.append(first)
        wait_for(all_in_state(client, [job_id], "running"), 15, "the job running", first)
        os.kill(server.proc.pid, signal.SIGSTOP)  # Redis hangs: connections stay open, nothing answers
        try:
            started = time.monotonic()
            first.proc.send_signal(signal.SIGTERM)
            first.proc.wait(GRACE_S + SHUTDOWN_MARGIN_S + 10)  # raises TimeoutExpired if it hangs
            assert time.monotonic() - started <= GRACE_S + SHUTDOWN_MARGIN_S + 5, first.log()[-2000:]
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        second = launch_worker(server.url, tmp_path, **env)
        workers.append(second)
        wait_for(all_in_state(client, [job_id], "done"), 20, "the job re-run and done", second)
        [rec] = records(client, [job_id])
        assert rec["executions"] >= 2  # the interrupted attempt and its re-run
    finally:
        for w in workers:
            if w.proc.poll() is None:
                w.proc.kill()
                w.proc.wait()
        client.close()
        server.cleanup()


async def test_worker_and_api_pools_bound_every_command_and_keep_alive(redis_url: str) -> None:
    from service.api import make_redis
    from service.settings import Settings
    from service.worker_conn import BoundedArqRedis, connect

    cfg = Settings(redis_url=redis_url, redis_timeout_s=0.7)
    worker_pool = await connect(cfg)
    api_pool = make_redis(cfg)
    # the worker bounds each round trip itself (one timeout per command or pipeline), the API per read
    assert isinstance(worker_pool, BoundedArqRedis) and worker_pool.round_trip_timeout_s == 0.7
    assert api_pool.connection_pool.connection_kwargs["socket_timeout"] == 0.7
    # the API's connect has its own timeout; the worker's is inside the round trip's bound (a connect timeout
    # of its own would fire while the worker's loop is merely late: tests/service/test_worker_conn.py)
    assert api_pool.connection_pool.connection_kwargs["socket_connect_timeout"] == 0.7
    assert worker_pool.connection_pool.connection_kwargs["socket_connect_timeout"] is None
    for pool in (worker_pool, api_pool):
        assert pool.connection_pool.connection_kwargs["socket_keepalive"] is True
        await pool.aclose()


async def test_a_hung_redis_times_out_every_worker_round_trip_and_the_pool_recovers(tmp_path: Path) -> None:
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from service.settings import Settings
    from service.worker_conn import connect

    server = EmbeddedRedis(tmp_path / "redis").start()
    assert server.proc is not None
    pool = await connect(Settings(redis_url=server.url, redis_timeout_s=0.3))
    try:
        await pool.set("k", "v")
        script = pool.register_script("return redis.call('GET', KEYS[1])")
        os.kill(server.proc.pid, signal.SIGSTOP)  # connections stay open, nothing answers
        try:
            for name, call in (
                ("command", lambda: pool.get("k")),
                ("pipeline", lambda: pool.pipeline(transaction=True).get("k").incr("n").execute()),
                ("script", lambda: script(keys=["k"])),
            ):
                started = time.monotonic()
                with pytest.raises(RedisTimeoutError):  # not the builtin TimeoutError of the guard below
                    await asyncio.wait_for(call(), 5.0)  # an unbounded round trip fails here, not hangs
                assert time.monotonic() - started < 3.0, name  # 0.3 s bound, an order of magnitude of margin
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        # the timed-out connections were dropped: no late reply is read as the answer to a later command
        assert await pool.get("k") == b"v"
        assert await pool.pipeline(transaction=True).incr("n").get("k").execute() == [1, b"v"]
    finally:
        await pool.aclose()
        server.cleanup()

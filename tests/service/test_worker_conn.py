"""The worker's round-trip timeout against a real Redis, on a loop the test itself keeps busy (issue 25): a
reply Redis sent is never given up on because the worker's own loop was late, and a Redis that does not
answer still times out, busy loop or not."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.exceptions import TimeoutError as RedisTimeoutError

from bench.launch.redis_server import EmbeddedRedis
from service import worker_lag
from service.settings import Settings
from service.worker_conn import LoopLateTimeoutError, connect

TIMEOUT_S = 0.05
HOG_S = 0.06  # one callback holding the loop: a round trip waits 4-15 of them, 6-18 x the timeout in all


@pytest.fixture
async def ticking() -> AsyncIterator[worker_lag.LoopLag]:
    lag = worker_lag.LoopLag()
    worker_lag.install(lag)
    lag.start()
    try:
        yield lag
    finally:
        await lag.stop()
        worker_lag.install(None)


async def _hog(stop: asyncio.Event) -> None:
    """Hold the loop HOG_S at a time (a CPU-bound job's page), yielding between."""
    while not stop.is_set():
        time.sleep(HOG_S)
        await asyncio.sleep(0)


async def test_replies_are_read_however_late_the_loop_is(tmp_path: Path, ticking: worker_lag.LoopLag) -> None:
    server = EmbeddedRedis(tmp_path / "redis").start()
    pool = await connect(Settings(redis_url=server.url, redis_timeout_s=TIMEOUT_S))
    stop = asyncio.Event()
    hog = asyncio.create_task(_hog(stop))
    try:
        await pool.set("k", "v")
        script = pool.register_script("return redis.call('INCR', KEYS[1])")
        for i in range(2):
            if i % 2:  # a new connection (TCP connect, AUTH) on the late loop too
                await pool.connection_pool.disconnect()
            assert await pool.get("k") == b"v"
            assert await pool.pipeline(transaction=True).incr("n").get("k").execute() == [2 * i + 1, b"v"]
            assert await script(keys=["n"]) == 2 * i + 2
        assert ticking.busy_s > 10 * TIMEOUT_S  # the loop really was late while those round trips waited
    finally:
        stop.set()
        await hog
        await pool.aclose()
        server.cleanup()


@pytest.mark.parametrize("busy", [False, True], ids=["idle-loop", "busy-loop"])
async def test_a_redis_that_does_not_answer_still_times_out(
    tmp_path: Path, ticking: worker_lag.LoopLag, busy: bool
) -> None:
    server = EmbeddedRedis(tmp_path / "redis").start()
    assert server.proc is not None
    pool = await connect(Settings(redis_url=server.url, redis_timeout_s=TIMEOUT_S))
    stop = asyncio.Event()
    hog = asyncio.create_task(_hog(stop)) if busy else None
    try:
        await pool.set("k", "v")
        os.kill(server.proc.pid, signal.SIGSTOP)
        try:
            for _ in range(2):
                started = time.monotonic()
                with pytest.raises(RedisTimeoutError) as caught:
                    await asyncio.wait_for(pool.get("k"), 60)  # an unbounded round trip fails here
                took = time.monotonic() - started
                # idle: the deadline and 24 iterations of 2 ms; busy: 24 HOG_S iterations (~1.5 s)
                assert took < (15.0 if busy else 1.0), took
                assert isinstance(caught.value, LoopLateTimeoutError) is busy, caught.value
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        assert await pool.get("k") == b"v"  # the timed-out connections were dropped, the pool recovers
    finally:
        stop.set()
        if hog is not None:
            await hog
        await pool.aclose()
        server.cleanup()

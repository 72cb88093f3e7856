"""The redis-freeze fault on real processes, without a load (issue 14.6): Redis hangs for DOWN_S and comes back;
the run's end or an interrupt ends the hang at once; a worker SIGTERMed during the hang exits within its grace
plus the worker's fixed margin; a frozen Redis still stops cleanly."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import redis

from bench.launch.redis_server import EmbeddedRedis
from bench.launch.stack import Stack
from bench.run.faults import FaultInjector, parse_fault
from service.worker_runtime import SHUTDOWN_MARGIN_S

GRACE_S = 2.0


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for key in [k for k in os.environ if k.startswith("OFFLOAD_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("OFFLOAD_SHUTDOWN_GRACE_S", str(GRACE_S))
    monkeypatch.setenv("OFFLOAD_POLL_DELAY_S", "0.05")
    s = Stack(tmp_path / "logs", workers=1)
    s.redis = EmbeddedRedis(tmp_path / "r")
    s.redis.start()
    yield s
    s.stop(grace_s=GRACE_S + SHUTDOWN_MARGIN_S + 5)


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=0.3, socket_connect_timeout=0.3)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _wait_frozen(url: str, within_s: float = 10.0) -> None:
    """Wait (bounded) until Redis stops answering: the injector's thread has frozen it."""
    deadline = time.monotonic() + within_s
    while _answers(url):
        assert time.monotonic() < deadline, f"Redis still answers {within_s} s after the freeze was fired"
        time.sleep(0.05)


def _fire(stack: Stack, spec: str) -> FaultInjector:
    injector = FaultInjector(stack, [parse_fault(spec, 600)])
    injector.tick("offload", 1e9)
    return injector


def test_freeze_hangs_redis_then_resumes_it(stack: Stack) -> None:
    injector = _fire(stack, "redis-freeze@0s:5s")
    _wait_frozen(stack.redis_url)  # up (connections accepted) but answering nothing
    (record,) = injector.join(10)
    assert _answers(stack.redis_url)
    assert record["name"] == "redis-freeze" and record["end_ts"] > record["ts"]


def test_the_end_of_the_run_ends_a_long_freeze_at_once(stack: Stack) -> None:
    injector = _fire(stack, "redis-freeze@0s:300s")
    _wait_frozen(stack.redis_url)
    started = time.monotonic()
    (record,) = injector.join(60)
    assert time.monotonic() - started < 10  # not the 300 s of the fault
    assert record["detail"]["cut_short"] is True and _answers(stack.redis_url)


def test_a_worker_sigterm_during_the_hang_exits_within_grace_plus_margin(stack: Stack) -> None:
    stack.start_worker()
    deadline = time.monotonic() + 30
    while not stack._workers_up():  # its heartbeat: the worker runs against Redis
        assert time.monotonic() < deadline and stack.workers[0].alive(), stack.workers[0].log_tail(5)
        time.sleep(0.1)
    freeze = _fire(stack, "redis-freeze@0s:300s")
    _wait_frozen(stack.redis_url)
    sigterm = _fire(stack, "worker-sigterm@0s")
    (record,) = sigterm.join(GRACE_S + SHUTDOWN_MARGIN_S + 30)
    freeze.join(10)
    assert record["detail"]["exit_s"] <= GRACE_S + SHUTDOWN_MARGIN_S + 5, record
    assert record["detail"]["exit_code"] is not None and record["detail"]["exit_code"] != -9, record


def test_a_frozen_redis_is_resumed_before_the_stack_stops(stack: Stack) -> None:
    assert stack.redis is not None
    stack.redis.freeze()
    proc = stack.redis.proc
    assert proc is not None
    started = time.monotonic()
    stack.stop(grace_s=5)
    assert time.monotonic() - started < 8 and proc.returncode == 0  # SIGCONT then a clean SIGTERM shutdown

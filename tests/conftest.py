"""Shared fixtures: a real Redis server on a free loopback port (no fakeredis anywhere).

The suite runs on pytest-xdist workers (`-n 3`, pyproject.toml): most tests wait on process start-up and
sleeps, not on the CPU. Every fixture here is per worker (its own Redis, its own tmp dirs, free ports).
Tests that drive a load at a high rate or judge the load generator's timing (LOAD_TESTS) never run two at
once: each holds one file lock shared by the run's workers, and they are collected first, so xdist hands
them all to the first worker, one after the other, while the other workers take the rest.
Tests that judge a rate the server holds to within 15 % (ALONE_TESTS) need the machine to themselves: the
other workers' fault runs made a capacity step's generator late (1 suite run in 2). Every test holds the
machine lock shared; those hold it exclusively (a turnstile stops a stream of shared holders starving them).
(xdist's own `--dist loadgroup` cannot do it here: on pytest 9.2 its group marks are silently ignored,
pytest-xdist issue 1386.)
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import redis

from bench.launch.redis_server import EmbeddedRedis

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"

# test files (or single tests, "file::name") that saturate the CPU or assert the generator's timing:
# max-rate and closed-model Locust runs, capacity searches, benchmarks, the open model's send accuracy.
# Locust's --processes master also binds a fixed port (5557): two such runs at once would collide.
LOAD_TESTS = (
    "tests/bench/capacity/test_known_capacity.py",
    "tests/bench/capacity/test_settle.py",
    # the benchmarks' quick modes judge nothing (both verdicts pass): only the one whose Locust master binds 5557
    "tests/benchmarks/test_benchmarks.py::test_benchmark_quick_mode_prints_its_figures[master_intake]",
    "tests/loadtests/test_counts.py",
    "tests/loadtests/test_jobside.py::test_unreachable_redis_skips_the_job_side_with_one_warning",
    "tests/loadtests/test_open_model.py",
    "tests/loadtests/test_smoke.py::test_api_locustfile_smoke",
)
LOAD_MARK = "one_load_at_a_time"
# load tests whose verdict depends on the generator keeping its schedule at ~150 req/s: the whole machine
ALONE_TESTS = (
    "tests/bench/capacity/test_known_capacity.py::test_ok_capacity_is_within_15_percent_of_a_known_capacity",
    "tests/bench/capacity/test_known_capacity.py::test_a_generator_limited_step_is_never_the_servers_capacity",
    # the worker's loop lag includes time its process waits for a core: other tests' CPU showed as 100-120 ms
    # p99 in a loaded suite run (bound 50 ms, judged <= 100 ms), the worker's own jobs alone as <= 100
    "tests/service/test_worker_overload.py::test_cpu_bound_jobs_run_fewer_at_once_with_no_retry_and_lag_under_the_bound",
)
ALONE_MARK = "machine_alone"
# long tests whose load is light (a few requests/s, no timing judged): collected first of all, so they start at
# once instead of ending the run late (they take no load lock; see _order)
LONG_TESTS = ("tests/ci/test_action.py::test_perf_workflow_and_action_run_end_to_end_in_a_fresh_venv",)
# tests that need a Debian tool beyond Python and pip: @pytest.mark.needs_tool("wrk") skips the test, naming the
# tool and its apt line, when the tool is not on PATH (a machine with only Python and pip passes the suite).
# .ci/run runs `-m needs_tool` once with the tools made unreachable and fails unless every one of them skips.
TOOL_MARK = "needs_tool"
APT_PACKAGE = {"wrk": "wrk", "chromium": "chromium"}


def pytest_configure(config: pytest.Config) -> None:
    """Register the load mark; give SIGINT back to the CLIs the Ctrl-C tests start."""
    config.addinivalue_line("markers", f"{LOAD_MARK}: never runs beside another such test (xdist)")
    config.addinivalue_line("markers", f"{ALONE_MARK}: never runs beside any other test (xdist)")
    config.addinivalue_line(
        "markers", f"{TOOL_MARK}(name, ...): skipped, with the apt line, without the tool"
    )
    # a shell starts a background job (`pytest &`) with SIGINT ignored, and an ignored signal stays ignored
    # across fork and exec: every CLI under test would ignore its Ctrl-C. A handled one is reset at exec.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _listed(item: pytest.Item, tests: tuple[str, ...]) -> bool:
    path = item.nodeid.split("[", 1)[0]
    return any(item.nodeid == t or path == t or path.startswith(t + "::") for t in tests)


def missing_tools(names: tuple[str, ...]) -> list[str]:
    """The tools of names that are not on PATH as executables (a file bound over by /dev/null is not one)."""
    return [name for name in names if shutil.which(name) is None]


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a needs_tool test whose tool is absent, naming it and the apt line that brings it."""
    for mark in item.iter_markers(TOOL_MARK):
        missing = missing_tools(tuple(mark.args))
        if missing:
            packages = " ".join(APT_PACKAGE.get(name, name) for name in missing)
            pytest.skip(f"{', '.join(missing)} not on PATH (apt-get install {packages})")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the load tests; collect the long ones, then the loads first (a stable sort after pytest-randomly's
    shuffle: every worker collects the same order, and the seed still replays it)."""
    for item in items:
        if _listed(item, LOAD_TESTS):
            item.add_marker(LOAD_MARK)
        if _listed(item, ALONE_TESTS):
            item.add_marker(ALONE_MARK)
    items.sort(key=_order)


def _order(item: pytest.Item) -> int:
    """Long tests, then the machine-alone loads, then the other loads, then the rest. xdist's first chunk (a
    quarter of a worker's share, ~35 tests) goes to one worker, which so runs all of them one after the other:
    the long test never holds the machine while an alone test waits for it on another worker."""
    if _listed(item, LONG_TESTS):
        return 0
    if item.get_closest_marker(ALONE_MARK) is not None:
        return 1
    return 2 if item.get_closest_marker(LOAD_MARK) is not None else 3


@contextmanager
def _flock(path: Path, how: int) -> Iterator[None]:
    with path.open("a") as fh:
        fcntl.flock(fh, how)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture(autouse=True)
def _one_load_at_a_time(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Under xdist, a load test holds a lock shared by the run's workers for its whole run; every test holds
    the machine lock, shared, or exclusively for ALONE_TESTS (taken in this order by all: no deadlock)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        yield
        return
    # each worker's basetemp is <the run's basetemp>/<worker id>: the parent is the same for all of them
    locks = tmp_path_factory.getbasetemp().parent
    with ExitStack() as held:
        if request.node.get_closest_marker(LOAD_MARK) is not None:
            held.enter_context(_flock(locks / "one-load-at-a-time.lock", fcntl.LOCK_EX))
        alone = request.node.get_closest_marker(ALONE_MARK) is not None
        # a waiting exclusive holder keeps the turnstile: shared holders queue behind it, not before it
        with _flock(locks / "machine-turnstile.lock", fcntl.LOCK_EX):
            held.enter_context(_flock(locks / "machine.lock", fcntl.LOCK_EX if alone else fcntl.LOCK_SH))
        yield


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """One real redis-server per session (per xdist worker: AOF on, loopback, free port)."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> Iterator[str]:
    """URL of the session Redis, flushed before each test."""
    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.stop()  # a fault test may have killed it: reap it and close its pipe before a new start
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url

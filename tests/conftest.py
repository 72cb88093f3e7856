"""Shared fixtures: a real Redis server on a free loopback port (no fakeredis anywhere).

The suite runs on pytest-xdist workers (`-n 4`, pyproject.toml): most tests wait on process start-up and
sleeps, not on the CPU. Every fixture here is per worker (its own Redis, its own tmp dirs, free ports).
Tests that drive a load at a high rate or judge the load generator's timing (LOAD_TESTS) never run two at
once: each holds one file lock shared by the run's workers, and they are collected first, so xdist hands
them all to the first worker, one after the other, while the other workers take the rest.
Tests that judge a rate the server holds to within 15 % (ALONE_TESTS) need the machine to themselves: the
other workers' fault runs made a capacity step's generator late (1 suite run in 2). Every test holds the
machine lock shared; those hold it exclusively (a turnstile stops a stream of shared holders starving them),
one after the other without letting go in between (each release let the other workers start a test, and the
next alone test waited for it: up to 28 s of the other workers' time per release).
Where they run (_order, pytest_collection_modifyitems): the first worker's first chunk is the loads, then (if
room is left) a few other tests, then all the alone tests at its end, so the other workers are busy with the
rest meanwhile and the machine is taken once (loads beyond the chunk would run later on other workers, under
the same lock); the long test (the fresh-venv action run, ~100-140 s) opens the second worker's first chunk,
so it is over before the alone tests start and it does not lengthen the first worker's chain.
(xdist's own `--dist loadgroup` cannot do it here: on pytest 9.2 its group marks are silently ignored,
pytest-xdist issue 1386.)
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
from collections.abc import Generator, Iterator
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
    # its bad-input tests run in-process and start nothing: only the searches are loads
    "tests/bench/capacity/test_known_capacity.py::test_ok_capacity_is_within_15_percent_of_a_known_capacity",
    "tests/bench/capacity/test_known_capacity.py::test_a_generator_limited_step_is_never_the_servers_capacity",
    "tests/bench/capacity/test_known_capacity.py::test_repeat_runs_the_whole_search_n_times_and_reports_median_and_spread",
    "tests/bench/capacity/test_known_capacity.py::test_ctrl_c_keeps_what_was_measured_and_says_where",
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
    # the load side's clock and flush judged to 2 ms: with 4 workers beside them, their probe processes waited
    # for a core (a timer 5.3 ms late in every one of 5 rounds, a fallback wait's median 2.01 ms; alone 0.01)
    "tests/loadtests/test_units.py::test_clock_waits_until_the_time_and_sees_a_stop",
    "tests/loadtests/test_units.py::test_a_sliced_flush_lets_timers_fire_between_slices",
    "tests/loadtests/test_units.py::test_the_clock_spin_lets_other_greenlets_run",
)
ALONE_MARK = "machine_alone"
# long tests whose load is light (a few requests/s, no timing judged): each opens the second xdist worker's first
# chunk, so it starts at once instead of ending the run late (they take no load lock; see _order)
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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the load tests and order the collection for xdist's first chunks (a stable partition of
    pytest-randomly's shuffle: every worker collects the same order, and the seed still replays it)."""
    for item in items:
        if _listed(item, LOAD_TESTS):
            item.add_marker(LOAD_MARK)
        if _listed(item, ALONE_TESTS):
            item.add_marker(ALONE_MARK)
    long = [item for item in items if _listed(item, LONG_TESTS)]
    loads = [item for item in items if _order(item) == 0 and item not in long]
    alone = [item for item in items if _order(item) == 1 and item not in long]
    rest = [item for item in items if _order(item) == 2 and item not in long]
    chunk = _first_chunk(config, len(items))
    if chunk == 0:  # not under xdist: the order decides nothing
        items[:] = loads + alone + long + rest
        return
    # the first worker's chunk ends with all the alone tests, so it takes the machine once, as late as the chunk
    # allows (the long tests, which open the second worker's chunk, should be over by then: else the alone
    # tests wait for them); loads that do not fit before them wait behind the long tests
    fit = max(chunk - len(alone), 0)
    fill = max(fit - len(loads), 0)
    items[:] = loads[:fit] + rest[:fill] + alone + long + loads[fit:] + rest[fill:]


def _first_chunk(config: pytest.Config, n_items: int) -> int:
    """How many tests xdist's load scheduler sends each worker first (xdist/scheduler/load.py: a quarter of a
    worker's share, at least 2, at most --maxschedchunk). Only the order depends on it, never a verdict."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    if workers < 2:
        return 0
    chunk = (n_items // workers) // 4
    limit = getattr(config.option, "maxschedchunk", None)
    return max(min(chunk, limit) if limit else chunk, 2)


def _order(item: pytest.Item) -> int:
    """The loads, then the machine-alone loads, then the rest (placed in pytest_collection_modifyitems). xdist's
    first chunk (33 tests at -n 4; 16 loads and 7 alone tests) goes to one worker, which runs them one after the other: no load waits for
    another on a second worker, and when the alone tests start, the other workers have long been busy with the
    rest."""
    if item.get_closest_marker(ALONE_MARK) is not None:
        return 1
    return 0 if item.get_closest_marker(LOAD_MARK) is not None else 2


@contextmanager
def _flock(path: Path, how: int) -> Iterator[None]:
    with path.open("a") as fh:
        fcntl.flock(fh, how)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# the test this worker runs next (pytest_runtest_protocol's nextitem), and the locks an alone test hands on
_next: list[pytest.Item | None] = [None]
_kept: list[ExitStack] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, object, object]:
    _next[0] = nextitem
    return (yield)


def _alone(item: pytest.Item | None) -> bool:
    return item is not None and item.get_closest_marker(ALONE_MARK) is not None


@pytest.fixture(autouse=True)
def _one_load_at_a_time(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Under xdist, a load test holds a lock shared by the run's workers for its whole run; every test holds
    the machine lock, shared, or exclusively for ALONE_TESTS (taken in this order by all: no deadlock). An
    alone test takes both; when its worker's next test is alone too, it hands both on to it."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        yield
        return
    # each worker's basetemp is <the run's basetemp>/<worker id>: the parent is the same for all of them
    locks = tmp_path_factory.getbasetemp().parent
    alone = _alone(request.node)
    carried = _kept.pop() if _kept else None
    if carried is not None and not alone:
        carried.close()
        carried = None
    with ExitStack() as held:
        if carried is not None:
            held.enter_context(carried)  # the load lock and the machine, exclusively, from the previous test
        else:
            if alone or request.node.get_closest_marker(LOAD_MARK) is not None:
                held.enter_context(_flock(locks / "one-load-at-a-time.lock", fcntl.LOCK_EX))
            # a waiting exclusive holder keeps the turnstile: shared holders queue behind it, not before it
            with _flock(locks / "machine-turnstile.lock", fcntl.LOCK_EX):
                held.enter_context(_flock(locks / "machine.lock", fcntl.LOCK_EX if alone else fcntl.LOCK_SH))
        yield
        if alone and _alone(_next[0]):
            _kept.append(held.pop_all())


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

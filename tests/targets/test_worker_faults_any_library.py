"""Faults act on any worker (issue 21): each stock example's stack (real Redis, the library's real worker CLI)
waits for its worker through what the library keeps in Redis, and a SIGKILL through the stack leaves no process
of the worker's tree behind: Celery's prefork child, RQ's work-horse (its own process group), Dramatiq's worker
process; a SIGTERM through the stack is the library's graceful stop: the job in flight ends done."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import psutil
import pytest

from bench.launch.procs import process_tree
from bench.launch.stack import Stack
from targets import load_target
from targets.trackers import make_tracker
from targets.trackers.liveness import live_workers
from tests.targets.conftest import VENV_BIN
from tests.targets.test_queue_libraries import IDS, LIBRARIES, Library

# processes a worker command has while a job runs, besides its main one (`--concurrency 1`, `--processes 1`)
CHILDREN = {"celery": 1, "rq": 1, "dramatiq": 1, "saq": 0}


def _stack(
    lib: Library, tmp_path: Path, work_ms: int, settings: str | None = None, redis_url: str | None = None
) -> Stack:
    """The example's stack: its API, one worker (the library's CLI), this venv on PATH; Redis: redis_url, or
    an embedded one stopped with the stack."""
    target, _ = load_target(lib.example / "target.toml")
    env = {"PATH": VENV_BIN + os.pathsep + os.environ.get("PATH", ""), "WORK_MS": str(work_ms)}
    if settings:
        env[f"{lib.name.upper()}_SETTINGS"] = settings
    return Stack(
        tmp_path / "logs", target=target, target_dir=lib.example, extra_env=env, redis_dir=tmp_path,
        redis_url=redis_url,
    )  # fmt: skip


def _job_in_flight(stack: Stack) -> str:
    """Enqueue one job through the API; return its id once the worker has had time to start it."""
    answer = httpx.post(stack.api_url + "/tasks/divide", json={"x": 1, "y": 2, "username": "u"}, timeout=10)
    assert answer.status_code == 202, answer.text
    pid = stack.workers[0].pid
    assert pid is not None
    lib = stack.target.jobs.tracker
    # RQ forks its work-horse only now (and the horse leaves the worker's process group)
    deadline = time.monotonic() + 30
    while len(tree := process_tree(pid)) < 1 + CHILDREN[lib]:
        assert time.monotonic() < deadline, f"no child in {[p.name() for p in tree]}"
        time.sleep(0.1)
    time.sleep(1.0)  # the job is picked up (a Celery child or a Dramatiq thread runs it)
    return str(answer.json()["job_id"])


@pytest.mark.parametrize("lib", LIBRARIES, ids=IDS)
def test_sigkill_reaches_the_whole_worker_of_any_library(lib: Library, tmp_path: Path) -> None:
    stack = _stack(lib, tmp_path, work_ms=20_000)
    try:
        stack.start(timeout_s=60)  # returns once the library's own sign shows the worker up
        assert live_workers(stack.target.jobs, stack.redis_url) == 1
        worker = stack.workers[0]
        assert worker.pid is not None
        _job_in_flight(stack)
        tree = process_tree(worker.pid)
        signalled = time.monotonic()
        stack.stop_worker(worker, signal.SIGKILL)
        # stop waits for the tree: a process left running its 20 s job (RQ's horse, out of the group) holds it
        assert time.monotonic() - signalled < 10, f"{lib.name}: the worker's tree outlived its SIGKILL"
        left = [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert left == [], f"{lib.name}: survived the SIGKILL: {left}"
        assert worker.returncode == -signal.SIGKILL
    finally:
        stack.stop(5)


@pytest.mark.parametrize(
    "lib", [lib for lib in LIBRARIES if lib.name != "saq"], ids=["rq", "celery", "dramatiq"]
)
def test_sigterm_lets_the_job_in_flight_finish(lib: Library, tmp_path: Path, redis_url: str) -> None:
    # Stack.stop: a SIGTERM to every worker, then each is stopped (a fault's worker-sigterm: the second step
    # alone). To the main process only, and once: sent to the group it killed Celery's prefork child mid-task
    # and reached Dramatiq's worker process twice (a second SIGTERM is a kill). SAQ cancels its jobs on SIGTERM.
    stack = _stack(lib, tmp_path, work_ms=3_000, settings=lib.settings, redis_url=redis_url)
    try:
        stack.start(timeout_s=60)
        job_id = _job_in_flight(stack)
    finally:
        stack.stop(30)
    tracker = make_tracker(stack.target.jobs, redis_url, stack.api_url)
    try:
        (record,) = tracker.export([job_id], {job_id: time.time()}, 0)
    finally:
        tracker.close()
    assert record["state"] == "done", (record, (tmp_path / "logs" / "worker-1.log").read_text())

"""Faults act on any worker (issue 21): each stock example's stack (real Redis, the library's real worker CLI)
waits for its worker through what the library keeps in Redis, and a SIGKILL through the stack leaves no process
of the worker's tree behind: Celery's prefork child, RQ's work-horse (its own process group), Dramatiq's worker
process."""

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
from targets.trackers.liveness import live_workers
from tests.targets.conftest import VENV_BIN
from tests.targets.test_queue_libraries import IDS, LIBRARIES, Library

# processes a worker command has while a job runs, besides its main one (`--concurrency 1`, `--processes 1`)
CHILDREN = {"celery": 1, "rq": 1, "dramatiq": 1, "saq": 0}


@pytest.mark.parametrize("lib", LIBRARIES, ids=IDS)
def test_sigkill_reaches_the_whole_worker_of_any_library(lib: Library, tmp_path: Path) -> None:
    target, _ = load_target(lib.example / "target.toml")
    env = {"PATH": VENV_BIN + os.pathsep + os.environ.get("PATH", ""), "WORK_MS": "20000"}
    stack = Stack(tmp_path / "logs", target=target, target_dir=lib.example, extra_env=env, redis_dir=tmp_path)
    try:
        stack.start(timeout_s=60)  # returns once the library's own sign shows the worker up
        assert live_workers(target.jobs, stack.redis_url) == 1
        worker = stack.workers[0]
        assert worker.pid is not None
        answer = httpx.post(
            stack.api_url + "/tasks/divide", json={"x": 1, "y": 2, "username": "u"}, timeout=10
        )
        assert answer.status_code == 202, answer.text
        # a job in flight: RQ forks its work-horse only now (it leaves the worker's process group)
        deadline = time.monotonic() + 30
        while len(tree := process_tree(worker.pid)) < 1 + CHILDREN[lib.name]:
            assert time.monotonic() < deadline, f"no child in {[p.name() for p in tree]}"
            time.sleep(0.1)
        time.sleep(1.0)  # the job is picked up (a Celery child or Dramatiq thread runs it)
        tree = process_tree(worker.pid)
        stack.stop_worker(worker, signal.SIGKILL)
        left = [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert left == [], f"{lib.name}: survived the SIGKILL: {left}"
        assert worker.returncode == -signal.SIGKILL
    finally:
        stack.stop(5)

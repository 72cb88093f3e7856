"""Every way out of a real `offload-bench up` stops everything, in order (issue 14.11).

A terminal's Ctrl-C goes to the CLI's whole process group; SIGTERM may come twice; an interrupt may land while
Redis is still starting. Each time no process may be left, and Redis must outlive the workers' drain.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bench.launch.redis_server import find_redis_server, free_port
from tests.bench._proctree import TreeWatcher

# 2 pages x 400 ms: jobs still in flight when the stop begins, so the workers drain against Redis
SLOW_JOBS = {"OFFLOAD_PAGES": "2", "OFFLOAD_IO_MS": "400", "OFFLOAD_IO_SIGMA": "0", "OFFLOAD_CPU_MS": "0"}


def _up(
    tmp_path: Path, workers: int = 1, env_extra: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_") and k != "REDIS_URL"}
    env.update(SLOW_JOBS, **(env_extra or {}))
    with (tmp_path / "cli.err").open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench", "up", "--port", str(port), "--workers", str(workers),
             "--logs", str(tmp_path / "logs")],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=err,
            start_new_session=True,  # the CLI leads its own group, as a terminal's foreground job does
        )  # fmt: skip
    return proc, f"http://127.0.0.1:{port}"


def _wait_healthy(watcher: TreeWatcher, url: str, tmp_path: Path) -> None:
    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    assert watcher.wait(60, until=healthy) is None, (tmp_path / "cli.err").read_text()[-2000:]


def _enqueue(url: str, n: int) -> None:
    """Enqueue n slow jobs and wait (bounded) until one runs, so the stop finds jobs in flight. The worker may
    start late on a loaded machine (/healthz answers before it is up); a batch it already finished is
    replaced by a new one."""

    def batch() -> list[str]:
        ids = []
        for i in range(n):
            answer = httpx.post(f"{url}/offload/sources", json={"user_id": f"u{i}", "name": "n"}, timeout=5)
            assert answer.status_code == 202, answer.text
            ids.append(answer.json()["source_id"])
        return ids

    ids = batch()
    deadline = time.monotonic() + 90
    while True:
        states = {httpx.get(f"{url}/sources/{i}", timeout=5).json()["state"] for i in ids}
        if "running" in states:
            return
        if states <= {"done", "dead"}:
            ids = batch()
        assert time.monotonic() < deadline, f"no job seen running within 90 s (states {states})"
        time.sleep(0.05)


def _worker_logs(tmp_path: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in sorted((tmp_path / "logs").glob("worker-*.log")))


@pytest.mark.timeout(300)  # bounded waits: start 60 s + a job running 90 s + the stop 90 s
def test_ctrl_c_to_the_terminal_group_lets_workers_drain_before_redis_stops(tmp_path):
    proc, url = _up(tmp_path)
    watcher = TreeWatcher(proc)
    try:
        _wait_healthy(watcher, url, tmp_path)
        _enqueue(url, 10)  # in flight when the Ctrl-C comes
        watcher.poll()
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        code = watcher.wait(90)
    err = (tmp_path / "cli.err").read_text()
    assert code is not None and "Traceback" not in err, err[-2000:]
    assert any("redis-server" in cmd for cmd in watcher.seen.values()), watcher.seen
    assert watcher.survivors() == []
    logs = _worker_logs(tmp_path)
    # the drain finished its jobs against a live Redis: no connection error while stopping
    assert "Connection refused" not in logs and "ConnectionError" not in logs, logs[-3000:]


@pytest.mark.timeout(300)  # bounded waits: start 60 s + a job running 90 s + the stop 90 s
def test_a_second_sigterm_during_cleanup_does_not_abort_the_stop(tmp_path):
    proc, url = _up(tmp_path, workers=2)
    watcher = TreeWatcher(proc)
    try:
        _wait_healthy(watcher, url, tmp_path)
        _enqueue(url, 10)
        watcher.poll()
    finally:
        proc.send_signal(signal.SIGTERM)
        # impatient supervisor: SIGTERM again and again while the CLI is stopping its processes
        deadline = time.monotonic() + 3
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
            watcher.poll()
            proc.send_signal(signal.SIGTERM)
        code = watcher.wait(90)
    assert code is not None
    assert watcher.survivors() == [], (tmp_path / "cli.err").read_text()[-2000:]


def test_an_interrupt_while_redis_starts_leaves_nothing(tmp_path):
    slow = tmp_path / "slow-redis"
    slow.write_text(f'#!/bin/sh\nsleep 2\nexec {find_redis_server()} "$@"\n')
    slow.chmod(0o755)
    proc, _ = _up(tmp_path, env_extra={"OFFLOAD_REDIS_SERVER": str(slow)})
    watcher = TreeWatcher(proc)

    def redis_starting() -> bool:
        return any("slow-redis" in cmd for cmd in watcher.seen.values())

    try:
        assert watcher.wait(30, until=redis_starting) is None, (tmp_path / "cli.err").read_text()[-2000:]
    finally:
        proc.send_signal(signal.SIGINT)
        code = watcher.wait(60)
    assert code is not None
    assert watcher.survivors() == [], (tmp_path / "cli.err").read_text()[-2000:]

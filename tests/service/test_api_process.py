"""`python -m service.api` as a process: settings errors for people, sync idempotency while in flight."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import httpx
import redis

from service import keys
from tests.service.conftest import REPO

BODY = {"user_id": "u", "name": "n"}


def _run_api(env_overrides: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_") and k != "REDIS_URL"}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-m", "service.api"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )


def test_invalid_settings_exit_2_with_one_line_and_no_traceback() -> None:
    for overrides, needle in (
        ({"OFFLOAD_API_PORT": "abc"}, "api_port"),
        ({"OFFLOAD_REDIS_URL": "http://x"}, "redis_url"),
        ({"OFFLOAD_CPU_MS": "-1"}, "cpu_ms"),
    ):
        done = _run_api(overrides)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], done.stderr
        assert "Traceback" not in done.stderr


def test_sync_idempotency_key_while_first_request_runs_gets_409(start_api) -> None:  # type: ignore[no-untyped-def]
    # 2 pages of 1 s simulated I/O: the first request is still running when the second arrives
    api = start_api(OFFLOAD_PAGES="2", OFFLOAD_IO_MS="1000", OFFLOAD_IO_SIGMA="0")
    headers = {"Idempotency-Key": "slow"}
    first: list[httpx.Response] = []

    def send_first() -> None:
        with httpx.Client(base_url=api.url, timeout=30) as c:
            first.append(c.post("/sync/sources", json=BODY, headers=headers))

    client = redis.Redis.from_url(api.env["OFFLOAD_REDIS_URL"])
    thread = threading.Thread(target=send_first)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not list(client.scan_iter(match=keys.source("*"), _type="hash")):  # the first claimed the key
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.01)
        with httpx.Client(base_url=api.url, timeout=30) as c:
            second = c.post("/sync/sources", json=BODY, headers=headers)
            thread.join(30)
            third = c.post("/sync/sources", json=BODY, headers=headers)
    finally:
        thread.join(30)
        client.close()
    assert first[0].status_code == 201
    assert second.status_code == 409 and "in progress" in second.json()["detail"]
    assert third.status_code == 201 and third.json()["source_id"] == first[0].json()["source_id"]
    assert third.json()["result_digest"] == first[0].json()["result_digest"]

"""Secrets never leak (issue 14.9): not on the process list, not in the CLI output, not in the run folder."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import httpx
import psutil

from bench.launch.redis_server import free_port
from tests.bench._proctree import TreeWatcher

TOKEN = "admin-tok-5f2b9c0e7d"


def test_a_run_keeps_the_redis_password_and_the_admin_token_to_itself(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_") and k != "REDIS_URL"}
    env.update(OFFLOAD_ADMIN_TOKEN=TOKEN, OFFLOAD_PAGES="1", OFFLOAD_IO_MS="5", OFFLOAD_CPU_MS="0")
    with (tmp_path / "out").open("wb") as out, (tmp_path / "err").open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench", "run", "--modes", "offload", "--duration", "3s", "--warmup", "0s",
             "--arrival-rate", "10", "--out", str(tmp_path / "runs")],
            cwd=tmp_path, env=env, stdout=out, stderr=err,
        )  # fmt: skip
    watcher = TreeWatcher(proc)
    cmdlines: list[str] = []
    passwords: set[str] = set()
    while proc.poll() is None:
        watcher.poll()
        time.sleep(0.1)
        for child in psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []:
            try:
                cmdlines.append(" ".join(child.cmdline()))
                url = child.environ().get("OFFLOAD_REDIS_URL")
            except psutil.Error:
                continue
            if url:
                passwords.add(urllib.parse.urlsplit(url).password or "")
    assert proc.returncode == 0, (tmp_path / "err").read_text()[-3000:]
    (password,) = passwords  # the API and the worker were handed the embedded Redis's password
    assert len(password) >= 32
    assert any("locust" in c for c in cmdlines) and any("redis-server" in c for c in cmdlines)
    for secret in (password, TOKEN):
        assert not [c for c in cmdlines if secret in c], "a secret on the process list"
        for path in [tmp_path / "out", tmp_path / "err", *(tmp_path / "runs").rglob("*")]:
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), f"{secret[:6]}... in {path}"
    assert watcher.survivors() == []


def test_up_takes_the_admin_token_from_a_file_and_shows_the_redis_url_redacted(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_") and k != "REDIS_URL"}
    with (tmp_path / "err").open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench", "up", "--port", str(port), "--workers", "0",
             "--admin-token-file", str(token_file), "--logs", str(tmp_path / "logs")],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    watcher = TreeWatcher(proc)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        return b"Ctrl-C stops everything" in (tmp_path / "err").read_bytes()

    try:
        assert watcher.wait(60, until=ready) is None, (tmp_path / "err").read_text()[-2000:]
        headers = {"Authorization": f"Bearer {TOKEN}"}
        assert httpx.get(f"{url}/admin/dlq", headers=headers, timeout=5).status_code == 200
        assert httpx.get(f"{url}/admin/dlq", timeout=5).status_code == 401
        cmdlines = [" ".join(p.cmdline()) for p in psutil.Process(proc.pid).children(recursive=True)]
        env_file = tmp_path / "logs" / "redis.env"
        password = urllib.parse.urlsplit(env_file.read_text().strip().split("=", 1)[1]).password or ""
        assert len(password) >= 32 and stat.S_IMODE(env_file.stat().st_mode) == 0o600
    finally:
        proc.send_signal(signal.SIGTERM)
        watcher.wait(60)
    text = (tmp_path / "err").read_text()
    assert "redis://:***@127.0.0.1:" in text and password not in text and TOKEN not in text
    assert not [c for c in cmdlines if TOKEN in c or password in c]
    assert watcher.survivors() == []

"""The system under test as processes: Redis (embedded or external), the API under uvicorn, N arq workers."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from bench.launch.procs import ManagedProcess, python_module
from bench.launch.redis_server import EmbeddedRedis, free_port, port_in_use
from service import keys
from service.settings import WorkProfile


class StackError(Exception):
    """The stack could not start or stopped unexpectedly; one line for people."""


def check_redis(url: str, timeout_s: float = 2.0) -> None:
    """Raise StackError unless the Redis at url answers PING."""
    client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        client.ping()
    except (redis.RedisError, OSError, ValueError) as exc:
        raise StackError(f"Redis at {url} is unreachable: {exc}") from None
    finally:
        client.close()


def http_get_json(url: str, timeout_s: float = 1.0) -> tuple[int, dict[str, Any]]:
    """GET url; (status, JSON body) with status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 (loopback URL we built)
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read() or b"{}")
        except ValueError:
            body = {}
        return exc.code, body
    except (OSError, ValueError):
        return 0, {}


def work_env(work: WorkProfile) -> dict[str, str]:
    """OFFLOAD_* variables that hand the work profile to the API and the workers."""
    return {f"OFFLOAD_{name.upper()}": str(value) for name, value in work.model_dump().items()}


class Stack:
    """Start and stop Redis, the API and the workers; wait on every child; stop in a safe order."""

    def __init__(
        self,
        log_dir: Path,
        *,
        workers: int = 1,
        work: WorkProfile | None = None,
        redis_url: str | None = None,
        api_port: int = 0,
        extra_env: dict[str, str] | None = None,
        redis_dir: Path | None = None,
    ) -> None:
        self.log_dir = log_dir
        self.n_workers = workers
        self.work = work or WorkProfile()
        self.external_redis_url = redis_url
        self.api_port = api_port
        self.extra_env = dict(extra_env or {})
        self.redis_dir = redis_dir
        self.redis: EmbeddedRedis | None = None
        self.api: ManagedProcess | None = None
        self.workers: list[ManagedProcess] = []
        self._worker_seq = 0

    @property
    def redis_url(self) -> str:
        """The Redis every part of the stack uses."""
        if self.external_redis_url:
            return self.external_redis_url
        if self.redis is None:
            raise StackError("Redis is not started")
        return self.redis.url

    @property
    def api_url(self) -> str:
        """Base URL of the API."""
        return f"http://127.0.0.1:{self.api_port}"

    def env(self) -> dict[str, str]:
        """Environment of the API and worker processes."""
        env = dict(os.environ)
        env.update(work_env(self.work))
        env.update(
            {
                "OFFLOAD_REDIS_URL": self.redis_url,
                "OFFLOAD_API_HOST": "127.0.0.1",
                "OFFLOAD_API_PORT": str(self.api_port),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.pop("REDIS_URL", None)
        env.update(self.extra_env)
        return env

    def start(self, step: Callable[[str], None] = lambda _msg: None, timeout_s: float = 30.0) -> None:
        """Start Redis, the API and the workers, and wait until the API is healthy and workers beat."""
        if self.api_port and port_in_use(self.api_port):
            raise StackError(f"port {self.api_port} is already in use (pick another with --port)")
        if self.external_redis_url:
            step("checking Redis")
            check_redis(self.external_redis_url)
        else:
            step("starting embedded Redis")
            self.redis = EmbeddedRedis(self.redis_dir).start()
        self.api_port = self.api_port or free_port()
        step("starting API")
        self.api = ManagedProcess("api", python_module("service.api"), self.env(), self.log_dir / "api.log")
        self.api.start()
        for _ in range(self.n_workers):
            self.start_worker()
        step("waiting for the API and workers")
        self.wait_ready(timeout_s)

    def start_worker(self) -> ManagedProcess:
        """Start one more worker process."""
        self._worker_seq += 1
        name = f"worker-{self._worker_seq}"
        proc = ManagedProcess(name, python_module("service.worker"), self.env(), self.log_dir / f"{name}.log")
        self.workers.append(proc.start())
        return proc

    def live_worker_beats(self) -> int:
        """How many worker heartbeat keys are present in Redis."""
        client = redis.Redis.from_url(self.redis_url, socket_timeout=1, socket_connect_timeout=1)
        try:
            return sum(1 for _ in client.scan_iter(match=keys.WORKER_HEARTBEAT_PREFIX + "*", count=100))
        except redis.RedisError:
            return 0
        finally:
            client.close()

    def wait_ready(self, timeout_s: float) -> None:
        """Wait until /healthz answers 200 and every worker has a heartbeat; StackError on death or timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            for proc in [self.api, *self.workers]:
                if proc is not None and not proc.alive():
                    raise StackError(
                        f"{proc.name} exited at start (code {proc.returncode}): {proc.log_tail()}"
                    )
            status, _ = http_get_json(self.api_url + "/healthz")
            if status == 200 and self.live_worker_beats() >= sum(w.alive() for w in self.workers):
                return
            if time.monotonic() > deadline:
                raise StackError(
                    f"the stack was not ready within {timeout_s:.0f} s (see logs in {self.log_dir})"
                )
            time.sleep(0.1)

    def restart_dead_workers(self) -> list[str]:
        """Start a replacement for every worker that died; return the names of the dead ones."""
        dead = [w for w in self.workers if not w.alive()]
        for proc in dead:
            proc.stop(0)
            self.workers.remove(proc)
            self.start_worker()
        return [p.name for p in dead]

    def stop_worker(
        self, proc: ManagedProcess, sig: int = signal.SIGTERM, grace_s: float = 30.0
    ) -> int | None:
        """Stop one worker with sig (SIGTERM: graceful; SIGKILL: crash) and remove it from the stack."""
        code = proc.stop(grace_s, sig=sig)
        if proc in self.workers:
            self.workers.remove(proc)
        return code

    def stop(self, grace_s: float = 30.0) -> None:
        """Stop the API first (no new jobs), then workers (they finish in-flight jobs), then Redis."""
        if self.api is not None:
            self.api.stop(10.0)
        for proc in self.workers:
            proc.send(signal.SIGTERM)
        for proc in self.workers:
            proc.stop(grace_s)
        if self.redis is not None:
            self.redis.cleanup()

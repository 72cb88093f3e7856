"""The system under test as processes: Redis (embedded or external), a target's API and N workers.

A target's commands run through the shell with the current PATH, cwd = the target file's folder, each in its
own process group (signals reach the command, not only the shell), output in log_dir. `url` starts nothing.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import redis

from bench.errors import signals_deferred
from bench.launch.procs import ManagedProcess
from bench.launch.redis_server import EmbeddedRedis, free_port, port_in_use
from bench.launch.shell import WORKER_SIGNAL_SCOPE, ShellProcess, http_status, shell_argv, start_values
from bench.launch.startfail import auth_hint, exited_line, not_ready_line
from runfolder.redact import redact
from service.settings import WorkProfile
from targets import Target, load_target
from targets import placeholders as ph
from targets.trackers.liveness import LIBRARIES, live_workers

READY_TIMEOUT_S = 30.0
# after the first process is seen dead, how long the others get to show their own failure (issue 26)
DEATH_GRACE_S = 1.0
# what a Redis client logs when it reached a Redis with a password without giving it (redis-py, the server)


class StackError(Exception):
    """The stack could not start or stopped unexpectedly; one line for people."""


class TargetStartError(StackError):
    """The target's processes could not start (command not found, never ready): a usage error, exit 2."""


def check_redis(url: str, timeout_s: float = 2.0) -> None:
    """Raise StackError unless the Redis at url answers PING."""
    client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        client.ping()
    except (redis.RedisError, OSError, ValueError) as exc:
        raise StackError(f"Redis at {redact(url)} is unreachable: {redact(str(exc))}") from None
    finally:
        client.close()


def work_env(work: WorkProfile) -> dict[str, str]:
    """OFFLOAD_* variables that hand the work profile to the API and the workers."""
    return {f"OFFLOAD_{name.upper()}": str(value) for name, value in work.model_dump().items()}


class Stack:
    """Start and stop a target's Redis, API and workers; wait on every child; stop in a safe order.

    Without a target it runs the built-in one (the sample service): one path for every service.
    """

    def __init__(
        self,
        log_dir: Path,
        *,
        target: Target | None = None,
        target_dir: Path | None = None,
        workers: int = 1,
        work: WorkProfile | None = None,
        redis_url: str | None = None,
        api_port: int = 0,
        extra_env: dict[str, str] | None = None,
        redis_dir: Path | None = None,
        worker_nice: int = 0,
    ) -> None:
        if target is None:
            target, file = load_target(None)
            target_dir = file.parent
        self.target = target
        self.target_dir = target_dir or Path.cwd()
        self.log_dir = log_dir
        self.n_workers = workers if target.service.worker else 0
        self.work = work or WorkProfile()
        self.external_redis_url = redis_url
        self.api_port = api_port
        self.extra_env = dict(extra_env or {})
        self.redis_dir = redis_dir
        self.redis: EmbeddedRedis | None = None
        self.api: ManagedProcess | None = None
        self.workers: list[ManagedProcess] = []
        self._worker_seq = 0
        # the workers' CPU priority (nice; 0: the default): a capacity search lowers it while it measures the
        # API, so a worker draining a backlog takes only the CPU the API, Redis and the generator leave
        self.worker_nice = worker_nice
        self._url: str | None = None

    @property
    def redis_url(self) -> str:
        """The Redis the target's processes and the tracker use."""
        if self.external_redis_url:
            return self.external_redis_url
        if self.redis is None:
            raise StackError("Redis is not started")
        return self.redis.url

    @property
    def passwordless_redis(self) -> bool:
        """True when this stack's embedded Redis takes no password (the target's redis_auth = false)."""
        return self.external_redis_url is None and not self.target.service.redis_auth

    @property
    def api_url(self) -> str:
        """Base URL of the API (the target's url, or the API this stack started)."""
        if self._url is None:
            raise StackError("the stack is not started")
        return self._url

    def values(self) -> dict[str, str]:
        """The start-time placeholder values."""
        return start_values(self.api_port, self.redis_url)

    def env(self) -> dict[str, str]:
        """Environment of the API and workers: ours, the work profile, the caller's additions, the target's env."""
        env = dict(os.environ)
        env.pop("REDIS_URL", None)
        env["PYTHONUNBUFFERED"] = "1"
        env.update(work_env(self.work))  # the sample service's work profile; other services ignore OFFLOAD_*
        env.update(self.extra_env)
        values = self.values()
        env.update({k: ph.expand(v, values) for k, v in self.target.service.env.items()})
        return env

    def _shell(self, name: str, command: str, scope: str = "group", nice: int = 0) -> ShellProcess:
        cmd = ph.expand(command, self.values())
        log = self.log_dir / f"{name}.log"
        # POSIX nice(1) execs the shell: the same pid, and every process the command forks inherits the value
        argv = ["nice", "-n", str(nice), *shell_argv(cmd)] if nice else shell_argv(cmd)
        proc = ShellProcess(name, argv, self.env(), log, self.target_dir, scope=scope)
        proc.start()
        return proc

    def start(
        self, step: Callable[[str], None] = lambda _msg: None, timeout_s: float = READY_TIMEOUT_S
    ) -> None:
        """Start Redis, the API and the workers; wait until the ready path answers 2xx and workers are up."""
        if self.api_port and port_in_use(self.api_port):
            raise StackError(f"port {self.api_port} is already in use (pick another with --port)")
        if self.external_redis_url:
            step("checking Redis")
            check_redis(self.external_redis_url)
        else:
            step("starting embedded Redis")
            # held before it starts: stop() reaches it from now on
            self.redis = EmbeddedRedis(self.redis_dir, auth=self.target.service.redis_auth)
            self.redis.start()
        service = self.target.service
        if service.url:
            self._url = ph.expand(service.url, self.values()).rstrip("/")
            step(f"checking {self._url}")
            self.wait_ready(min(timeout_s, 10.0))
            return
        self.api_port = self.api_port or free_port()
        self._url = f"http://127.0.0.1:{self.api_port}"
        step("starting the API")
        assert service.api is not None
        self.api = self._shell("api", service.api)
        for _ in range(self.n_workers):
            self.start_worker()
        step("waiting for the API and workers")
        self.wait_ready(timeout_s)

    def start_worker(self) -> ManagedProcess:
        """Start one more worker process."""
        if not self.target.service.worker:
            raise StackError("the target has no worker command")
        self._worker_seq += 1
        scope = WORKER_SIGNAL_SCOPE.get(self.target.jobs.tracker, "group")
        proc = self._shell(f"worker-{self._worker_seq}", self.target.service.worker, scope, self.worker_nice)
        self.workers.append(proc)
        return proc

    def _workers_up(self) -> bool:
        """Every live worker command shows it runs, from what its library writes: our service's heartbeats,
        arq's health-check key (written at start), or RQ's, SAQ's, Dramatiq's, Celery's own sign (liveness.py)."""
        live = sum(w.alive() for w in self.workers)
        tracker = self.target.jobs.tracker
        if live == 0 or tracker not in ("records", "arq", *LIBRARIES):
            return True
        if tracker in LIBRARIES:
            try:
                up = live_workers(self.target.jobs, self.redis_url, expected=live)
            except redis.RedisError:
                return False
            return up is None or up >= live
        client = redis.Redis.from_url(self.redis_url, socket_timeout=1, socket_connect_timeout=1)
        try:
            if tracker == "arq":
                return bool(client.exists(self.target.jobs.queue + ":health-check"))
            from service.lifecycle import live_workers as beating  # the built-in target's workers: one zset

            return beating(client) >= live
        except redis.RedisError:
            return False
        finally:
            client.close()

    def _started(self) -> list[ManagedProcess]:
        return [p for p in [self.api, *self.workers] if p is not None]

    def _auth_hint(self) -> str:
        """The fix, when a process's log shows Redis's authentication error; '' otherwise."""
        return auth_hint(self._started(), self.passwordless_redis, bool(self.external_redis_url))

    def _start_failure(self) -> str:
        """One line naming every process that exited at start, each with its code and its own log's tail.

        The first death seen is rarely the only one (an API and its workers share a broken setting): the
        others get up to DEATH_GRACE_S to show theirs, so the line is complete whichever died first.
        """
        deadline = time.monotonic() + DEATH_GRACE_S
        for proc in self._started():
            proc.wait(max(0.0, deadline - time.monotonic()))
        dead = [proc for proc in self._started() if not proc.alive()]
        return exited_line(dead, self.log_dir) + self._auth_hint()

    def _not_ready(self, timeout_s: float, what: str, procs: list[ManagedProcess]) -> str:
        """One line for a target still not ready at the deadline: what was missing, the logs of procs."""
        return not_ready_line(timeout_s, what, procs) + self._auth_hint()

    def wait_ready(self, timeout_s: float) -> None:
        """Wait for a 2xx on the ready path (and workers up); TargetStartError on a death or at the deadline."""
        url = self.api_url + self.target.ready_path
        strict = self.target.service.ready is not None  # without a ready path any HTTP answer means "up"
        deadline = time.monotonic() + timeout_s
        while True:
            if not all(proc.alive() for proc in self._started()):
                raise TargetStartError(self._start_failure())
            status = http_status(url)
            up = 200 <= status < 300 if strict else status > 0
            if up and self._workers_up():
                return
            if time.monotonic() > deadline:
                if up:  # the API answers: the workers are what is missing
                    raise TargetStartError(self._not_ready(timeout_s, "workers not up", self.workers))
                api = [self.api] if self.api is not None else []
                what = f"GET {url} answered {status or 'nothing'}"
                raise TargetStartError(self._not_ready(timeout_s, what, api))
            time.sleep(0.1)

    def restart_api(self, name: str) -> ManagedProcess:
        """Start the target's API again, on its port, as the one this stack holds (its log: <name>.log beside the
        first one's); the caller stops the old one first and waits for the ready path after."""
        if self.target.service.api is None or self._url is None or self.target.service.url:
            raise StackError("this stack started no API to restart")
        self.api = self._shell(name, self.target.service.api)
        return self.api

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
        """Stop the API first (no new jobs), then workers (they finish in-flight jobs), then Redis.

        A frozen Redis (redis-freeze) is resumed first, or the drain would hang on it; Ctrl-C and SIGTERM
        arriving meanwhile are ignored, so a second signal cannot leave workers or Redis running (issue 14.11).
        """
        with signals_deferred():
            if self.redis is not None:
                self.redis.thaw()
            if self.api is not None:
                self.api.stop(10.0)
            for proc in self.workers:
                proc.send(signal.SIGTERM)
            for proc in self.workers:
                proc.stop(grace_s)
            if self.redis is not None:
                self.redis.cleanup()

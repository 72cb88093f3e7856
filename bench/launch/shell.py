"""Target commands as processes: run through the shell, each in its own process group, signalled as a group."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from bench.launch.procs import ManagedProcess, group_members, wait_gone

_SHELL_SYNTAX = re.compile(r"[;&|<>()$`\\\n]|^\s*(cd|export|source|\.)\s")


def shell_argv(command: str) -> list[str]:
    """argv running command through the shell; a simple command is exec'd, so signals and exit codes are its own."""
    if _SHELL_SYNTAX.search(command):
        return ["/bin/sh", "-c", command]
    return ["/bin/sh", "-c", "exec " + command]


class ShellProcess(ManagedProcess):
    """A shell command in its own process group; signals go to the whole group, and stop waits for all of it."""

    def send(self, sig: int) -> None:
        """Signal the command's process group while it runs."""
        if self.alive() and self.popen is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, sig)

    def stop(self, timeout_s: float = 10.0, sig: int = signal.SIGTERM) -> int | None:
        """Signal the group, wait for the shell and every process of its group, then SIGKILL what is left."""
        if self.popen is not None and self.alive():
            pid = self.popen.pid
            group = [p for p in group_members(pid) if p.pid != pid]
            self.send(sig)
            started = time.monotonic()
            self.wait(timeout_s)
            wait_gone(group, max(0.0, timeout_s - (time.monotonic() - started)))
        return super().stop(0.0, sig=signal.SIGKILL)


def http_status(url: str, timeout_s: float = 1.0) -> int:
    """Status of GET url whatever the body; 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 (a URL of the target)
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return 0


def start_values(port: int, redis_url: str) -> dict[str, str]:
    """Values of the target file's start-time placeholders."""
    parsed = urllib.parse.urlsplit(redis_url)
    return {
        "port": str(port),
        "redis_url": redis_url,
        "redis_host": parsed.hostname or "127.0.0.1",
        "redis_port": str(parsed.port or 6379),
        "redis_password": urllib.parse.unquote(parsed.password or ""),
        "python": shlex.quote(sys.executable),
    }

"""Target commands as processes: run through the shell, each in its own session; a crash (SIGKILL) reaches the
whole process tree, a graceful signal the group or the top process, as the command's own CLI expects."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import psutil

from bench.launch.procs import GROUP_EXIT_S, ManagedProcess, kill_tree, process_tree, wait_gone

_SHELL_SYNTAX = re.compile(r"[;&|<>()$`\\\n]|^\s*(cd|export|source|\.)\s")


def shell_argv(command: str) -> list[str]:
    """argv running command through the shell; a simple command is exec'd, so signals and exit codes are its own."""
    if _SHELL_SYNTAX.search(command):
        return ["/bin/sh", "-c", command]
    return ["/bin/sh", "-c", "exec " + command]


SHELLS = frozenset({"sh", "bash", "dash", "zsh"})
# Where a worker's graceful SIGTERM goes, per tracker, as its library's CLI expects it (a SIGKILL reaches the whole
# tree): "top", the main process, which stops its children (group-wide, it killed Celery's prefork children
# mid-task and reached Dramatiq's worker processes twice: a kill); "group" (SAQ's peers, arq, ours, others).
WORKER_SIGNAL_SCOPE = {"celery": "top", "rq": "top", "dramatiq": "top"}


class ShellProcess(ManagedProcess):
    """A shell command in its own session; SIGKILL reaches its whole process tree, and stop waits for all of it.

    A graceful signal (SIGTERM, SIGINT) goes where the command's own CLI expects it: `scope="group"` (default)
    signals the process group, as a terminal's Ctrl-C does; `scope="top"` signals only the command's top process
    (the first one under the shell), for CLIs whose main process forwards the signal to its children and whose
    children must not get it twice (Celery, RQ, Dramatiq: WORKER_SIGNAL_SCOPE).
    """

    def __init__(self, *args: Any, scope: str = "group", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scope = scope
        self.graceful_sent: set[int] = set()  # stop does not send these again

    def leaders(self) -> list[psutil.Process]:
        """The command's top processes: the started one, or, when it is a shell, its children (recursively)."""
        if self.popen is None:
            return []
        out: list[psutil.Process] = []
        todo: list[psutil.Process] = []
        with contextlib.suppress(psutil.Error):
            todo.append(psutil.Process(self.popen.pid))
        while todo:
            proc = todo.pop()
            with contextlib.suppress(psutil.Error):
                kids = proc.children()
                if proc.name() in SHELLS and kids:
                    todo.extend(kids)
                else:
                    out.append(proc)
        return out

    def send(self, sig: int) -> None:
        """SIGKILL: every process of the command's tree; another signal: the group or the top (self.scope)."""
        if not self.alive() or self.popen is None:
            return
        if sig == signal.SIGKILL:
            kill_tree(self.popen.pid)
            return
        self.graceful_sent.add(sig)
        if self.scope == "top":
            for proc in self.leaders():
                with contextlib.suppress(psutil.Error):
                    proc.send_signal(sig)
        else:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, sig)

    def stop(self, timeout_s: float = 10.0, sig: int = signal.SIGTERM) -> int | None:
        """Signal (send), wait for the shell and every process of its tree, then SIGKILL what is left of the tree."""
        tree: list[psutil.Process] = []
        if self.popen is not None and self.alive():
            pid = self.popen.pid
            tree = [p for p in process_tree(pid) if p.pid != pid]
            # Stack.stop sends SIGTERM to every worker first (they stop side by side), then stops each: a second
            # one is "stop now" to every worker CLI here (our worker cancels its running jobs, Dramatiq's main
            # forwards it and its worker process dies of it, RQ's is a cold shutdown after 1 s), so it goes once
            if sig not in self.graceful_sent:
                self.send(sig)
            started = time.monotonic()
            self.wait(timeout_s)
            wait_gone(tree, max(0.0, timeout_s - (time.monotonic() - started)))
        # the rest of the tree, whether the top has exited or not: a child that left the group (RQ's work-horse)
        # is out of reach of the group SIGKILL below, and one reparented after its parent's exit is still in
        # the session (or in the snapshot taken before the signal)
        if self.popen is not None:
            if self.alive():  # still running after the grace: a crash for all of it, children included
                kill_tree(self.popen.pid)
            left = [p for p in [*tree, *process_tree(self.popen.pid)] if p.pid != self.popen.pid]
            for proc in left:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            wait_gone(left, GROUP_EXIT_S)
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

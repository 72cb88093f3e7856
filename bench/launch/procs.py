"""Child processes the CLI owns: started in their own session, logged to files, always waited on."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Final

import psutil

GROUP_EXIT_S: Final = 5.0  # how long stop waits for the SIGKILLed rest of a child's session to exit


class ManagedProcess:
    """One child: its own session (a terminal's Ctrl-C reaches only the CLI, which stops children in order)."""

    def __init__(
        self, name: str, args: Sequence[str], env: dict[str, str], log_path: Path, cwd: Path | None = None
    ) -> None:
        self.name = name
        self.cwd = cwd
        self.args = list(args)
        self.env = env
        self.log_path = log_path
        self.popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> ManagedProcess:
        """Start the child with stdout and stderr appended to its log file."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.args,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    @property
    def pid(self) -> int | None:
        """The child's pid while it has one."""
        return self.popen.pid if self.popen else None

    def alive(self) -> bool:
        """True while the child runs (poll() reaps it; no kill -0 guessing)."""
        return self.popen is not None and self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        """Exit code once it ended."""
        return self.popen.poll() if self.popen else None

    def send(self, sig: int) -> None:
        """Send a signal if the child still runs."""
        if self.alive() and self.popen is not None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(sig)

    def wait(self, timeout_s: float | None = None) -> int | None:
        """Wait for the exit; None when still running after timeout_s."""
        if self.popen is None:
            return None
        try:
            return self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout_s: float = 10.0, sig: int = signal.SIGTERM) -> int | None:
        """Signal, wait up to timeout_s, then SIGKILL the whole session and wait; return the exit code."""
        if self.popen is None:
            return None
        if self.alive():
            self.send(sig)
            if self.wait(timeout_s) is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        # grandchildren (e.g. Locust --processes) live in the same session: leave none behind, and return
        # only once they are gone (a SIGKILLed process takes a while to exit on a loaded machine)
        left = group_members(self.popen.pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        wait_gone(left, GROUP_EXIT_S)
        if self._log:
            self._log.close()
            self._log = None
        return self.popen.returncode

    def log_tail(self, lines: int = 5) -> str:
        """Last lines of the child's log, for one-line error messages."""
        try:
            text = [line.strip() for line in self.log_path.read_text(errors="replace").splitlines()]
        except OSError:
            return ""
        # blank lines and a traceback's ^^^/~~~ markers say nothing on one line
        return " | ".join([line for line in text if line.strip("^~ ")][-lines:])


def group_members(pgid: int) -> list[psutil.Process]:
    """The processes of process group pgid (not zombies: they have exited already)."""
    out = []
    for proc in psutil.process_iter():
        with contextlib.suppress(OSError, psutil.Error):
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
    return out


def process_tree(pid: int) -> list[psutil.Process]:
    """pid, its descendants and every process still in its session (not zombies), the started one first.

    A child that left the process group (RQ's work-horse calls os.setpgrp) is still a descendant, or, once its
    parent died and it was reparented, still in the session; one that also called setsid is found as a descendant.
    """
    out: dict[int, psutil.Process] = {}
    with contextlib.suppress(psutil.Error):
        top = psutil.Process(pid)
        out[pid] = top
        for child in top.children(recursive=True):
            out[child.pid] = child
    for proc in psutil.process_iter():
        with contextlib.suppress(OSError, psutil.Error):
            if proc.pid not in out and os.getsid(proc.pid) == pid:
                out[proc.pid] = proc
    live = []
    for proc in out.values():
        with contextlib.suppress(psutil.Error):
            if proc.status() != psutil.STATUS_ZOMBIE:
                live.append(proc)
    return live


def kill_tree(pid: int, rounds: int = 5) -> list[psutil.Process]:
    """SIGKILL pid's whole tree (process_tree) at once, as a crash would; return the processes signalled.

    Each process is stopped (SIGSTOP) before any is killed, and the tree is walked again until no new one shows:
    a parent killed first would orphan a child forked meanwhile, out of reach of the walk.
    """
    seen: dict[int, psutil.Process] = {}
    for _ in range(rounds):
        new = [p for p in process_tree(pid) if p.pid not in seen]
        if not new:
            break
        for proc in new:
            seen[proc.pid] = proc
            with contextlib.suppress(psutil.Error):
                proc.suspend()
    for proc in seen.values():
        with contextlib.suppress(psutil.Error):
            proc.kill()
    return list(seen.values())


def wait_gone(procs: list[psutil.Process], timeout_s: float) -> bool:
    """Wait until every one of procs has exited (a zombie has: only its parent's wait is missing)."""
    deadline = time.monotonic() + timeout_s
    while True:
        live = []
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    live.append(proc)
        if not live or time.monotonic() >= deadline:
            return not live
        procs = live
        time.sleep(0.02)


def python_module(module: str, *args: str) -> list[str]:
    """argv that runs `python -m module args` with this interpreter."""
    return [sys.executable, "-m", module, *args]

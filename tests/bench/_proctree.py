"""Watch a CLI subprocess's process tree, to prove nothing it started outlives it."""

from __future__ import annotations

import subprocess
import time

import psutil


class TreeWatcher:
    """Record every descendant (pid, create_time) of a running process."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.seen: dict[tuple[int, float], str] = {}

    def poll(self) -> None:
        """Add the current descendants."""
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return
        for child in children:
            try:
                key, cmd = (child.pid, child.create_time()), " ".join(child.cmdline()[:4])
            except psutil.Error:
                continue
            # the latest command line (after an exec), but never the empty one of a process caught exiting: a
            # poll in that window once blanked the API's, and a test looking for it failed
            if cmd or key not in self.seen:
                self.seen[key] = cmd

    def wait(self, timeout_s: float, until=None) -> int | None:
        """Poll the tree until the process exits (or `until()` is true); return its exit code or None."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.poll()
            if self.proc.poll() is not None:
                return self.proc.returncode
            if until is not None and until():
                return None
            time.sleep(0.2)
        return None

    def survivors(self, grace_s: float = 5.0) -> list[str]:
        """Descendants still alive (not zombies) after the parent exited, given grace_s to finish exiting."""
        deadline = time.monotonic() + grace_s
        while True:
            alive = []
            for (pid, created), cmd in self.seen.items():
                try:
                    p = psutil.Process(pid)
                    if p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE:
                        alive.append(f"{pid} {cmd}")
                except psutil.NoSuchProcess:
                    continue
            if not alive or time.monotonic() > deadline:
                return alive
            time.sleep(0.2)

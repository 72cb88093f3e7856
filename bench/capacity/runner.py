"""What every step shares: the machine's CPU sampled through it, and how a step ends badly (the steps
themselves run back to back against one stack: stackrun.py)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import psutil


class StepInterrupted(Exception):
    """Ctrl-C (or SIGTERM) during a step: the step is partial and is not judged."""


class StepFailed(Exception):
    """A step's run did not complete (stack or Locust failed); the message is one line."""


# processes outside this command using more than this many cores during a step: the machine was busy, and the
# step's figures are the other work's as much as the server's (benchmarks/_machine.py holds benchmarks to it)
OTHER_CORES_MAX: Final = 0.35
# all cores this busy during a worker step: the machine, not the worker, limits the job rate
MACHINE_BUSY_PERCENT: Final = 90.0


def _tree(root: int) -> list[psutil.Process]:
    """root and its descendants ([] when root is gone)."""
    try:
        top = psutil.Process(root)
        return [top, *top.children(recursive=True)]
    except psutil.Error:
        return []


def tree_cpu_s(root: int) -> dict[int, float]:
    """CPU seconds (user + system, reaped children included) of root and its descendants, by pid."""
    out: dict[int, float] = {}
    for proc in _tree(root):
        with contextlib.suppress(psutil.Error):
            t = proc.cpu_times()
            out[proc.pid] = t.user + t.system + t.children_user + t.children_system
    return out


def own_cpu_s(pid: int) -> float:
    """CPU seconds of pid alone (user + system, its children not included); 0 when it is gone."""
    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(t.user + t.system)


def role_cores(
    before: dict[int, float],
    after: dict[int, float],
    roles: Mapping[str, list[int]],
    root: int,
    span_s: float,
) -> dict[str, float]:
    """Cores each role's processes used between two tree_cpu_s readings of root's tree: a role is the subtrees
    of its pids (API, Redis, workers), "command" root itself and "generator" the rest of the tree (the load
    processes). Only processes present in both readings count (a reaped child's CPU moves to its parent)."""
    subtree: dict[int, str] = {}
    for role, pids in roles.items():
        for pid in pids:
            for member in _tree(pid):  # membership only: the CPU times are in before and after
                subtree[member.pid] = role
    subtree[root] = "command"
    out = dict.fromkeys([*roles, "command", "generator"], 0.0)
    for pid, cpu in after.items():
        if pid in before:
            out[subtree.get(pid, "generator")] += max(0.0, cpu - before[pid]) / span_s
    return out


def _busy_s(t: Any) -> float:
    """CPU seconds the cores were busy (idle, iowait and steal excluded; interrupts too: our own loopback
    traffic's softirq is charged to no process)."""
    skip = {"idle", "iowait", "steal", "guest", "guest_nice", "irq", "softirq"}
    return float(sum(v for k, v in t._asdict().items() if k not in skip))


@dataclass
class CpuSampler:
    """About once a second, in a thread (psutil): all cores' busy share, the cores that processes outside
    this command's process tree used (another job on the machine: the step's figures are not the server's),
    and, given `roles` (role -> pids, read at each sample), the cores each of our own processes used."""

    period_s: float = 1.0
    samples: list[tuple[float, float, float]] = field(default_factory=list)  # (ts, busy %, other cores)
    root: int = field(default_factory=os.getpid)
    roles: Callable[[], Mapping[str, list[int]]] | None = None
    by_role: list[tuple[float, dict[str, float]]] = field(default_factory=list)  # (ts, role -> cores)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _loop(self) -> None:
        psutil.cpu_percent(None)
        times, ours = psutil.cpu_times(), tree_cpu_s(self.root)
        alone = own_cpu_s(self.root)
        last = time.monotonic()
        while not self._stop.wait(self.period_s):
            busy = psutil.cpu_percent(None)
            times_b, ours_b, now = psutil.cpu_times(), tree_cpu_s(self.root), time.monotonic()
            span = max(now - last, 1e-6)
            mine = sum(ours_b[p] - ours[p] for p in ours_b if p in ours)
            other = max(0.0, (_busy_s(times_b) - _busy_s(times) - mine) / span)
            self.samples.append((time.time(), busy, other))
            alone_b = own_cpu_s(self.root)
            if self.roles is not None:  # the command alone: the CPU of its reaped children is not its own
                cores = role_cores({**ours, self.root: alone}, {**ours_b, self.root: alone_b}, self.roles(),
                                   self.root, span)  # fmt: skip
                self.by_role.append((time.time(), cores))
            times, ours, alone, last = times_b, ours_b, alone_b, now

    @contextlib.contextmanager
    def running(self) -> Iterator[CpuSampler]:
        """Sample while the block runs."""
        thread = threading.Thread(target=self._loop, name="cpu-sampler", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(5)

    def mean(self, t0: float, t1: float) -> float | None:
        """Mean busy % of the samples taken in [t0, t1]."""
        inside = [p for ts, p, _ in self.samples if t0 <= ts <= t1]
        return sum(inside) / len(inside) if inside else None

    def other_cores(self, t0: float, t1: float) -> float | None:
        """Mean cores used by processes outside this command in [t0, t1]."""
        inside = [o for ts, _, o in self.samples if t0 <= ts <= t1]
        return sum(inside) / len(inside) if inside else None

    def role_cores(self, t0: float, t1: float) -> dict[str, float] | None:
        """Mean cores each role used in [t0, t1] (None: no roles given, or no sample there)."""
        inside = [r for ts, r in self.by_role if t0 <= ts <= t1]
        if not inside:
            return None
        return {role: round(sum(r.get(role, 0.0) for r in inside) / len(inside), 3) for role in inside[-1]}

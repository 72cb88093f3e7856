"""Is the machine free for a benchmark? What else uses the cores, read before and between pairs.

Load average counts our own processes too (a benchmark drives it to ~nproc), so it is printed, not judged.
Judged: the CPU that processes outside this benchmark's process tree used over a short window (all cores'
busy time from /proc/stat minus our tree's, via psutil), and the hypervisor's steal time. Past a threshold the
check waits (bounded) for the machine to calm down; if it does not, the pair is marked busy and its figures
say "machine busy" instead of a verdict.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil

from bench.capacity.runner import tree_cpu_s  # the capacity search reads the same

OTHER_CORES_MAX = 0.35  # other processes' CPU, in cores, above which the machine is busy
STEAL_MAX = 0.10  # share of CPU time stolen by the hypervisor
WINDOW_S = 1.0


@dataclass
class Reading:
    """One look at the machine over WINDOW_S."""

    loadavg_1m: float
    other_cores: float  # CPU (in cores) used by processes outside our tree
    ours_cores: float
    steal: float  # share of all CPU time

    @property
    def busy(self) -> bool:
        """Too much other work (or steal) for a benchmark's figures to mean what they say."""
        return self.other_cores > OTHER_CORES_MAX or self.steal > STEAL_MAX

    def text(self) -> str:
        """A one-line description."""
        return (
            f"load average {self.loadavg_1m:.2f}, other processes {self.other_cores:.2f} cores, "
            f"ours {self.ours_cores:.2f}, steal {self.steal:.1%}"
        )


def read(window_s: float = WINDOW_S, root: int | None = None) -> Reading:
    """What the machine's cores did over window_s, with this process's tree (root) counted apart."""
    root = os.getpid() if root is None else root
    a, ours_a = psutil.cpu_times(), tree_cpu_s(root)
    time.sleep(window_s)
    b, ours_b = psutil.cpu_times(), tree_cpu_s(root)
    delta = {f: getattr(b, f) - getattr(a, f) for f in a._fields}
    # guest time is already in user time on Linux
    total = sum(v for k, v in delta.items() if k not in ("guest", "guest_nice")) or 1e-9
    idle = delta.get("idle", 0.0) + delta.get("iowait", 0.0)
    ncpu = psutil.cpu_count() or 1
    busy_cores = (total - idle - delta.get("steal", 0.0)) / total * ncpu
    ours = sum(ours_b[p] - ours_a[p] for p in ours_b if p in ours_a) / window_s
    return Reading(
        loadavg_1m=os.getloadavg()[0],
        other_cores=max(0.0, busy_cores - ours),
        ours_cores=ours,
        steal=delta.get("steal", 0.0) / total,
    )


@dataclass
class Watch:
    """The machine checks of one benchmark: wait (bounded) while it is busy, remember every reading."""

    wait_s: float = 15.0  # the most one check waits for the machine to calm down
    total_wait_s: float = 30.0  # the most one benchmark waits in all (make bench stays under 10 minutes)
    window_s: float = WINDOW_S  # a --quick smoke run looks for 0.1 s (its figures mean nothing anyway)
    readings: list[Reading] = field(default_factory=list)
    busy_checks: int = 0
    waited_s: float = 0.0

    def check(self, label: str = "") -> bool:
        """Read the machine; while busy, wait (bounded) and read again. True when it was free."""
        t0 = time.monotonic()
        reading = read(self.window_s)
        while reading.busy and time.monotonic() - t0 < self.wait_s and self.waited_s < self.total_wait_s:
            time.sleep(2.0)
            reading = read(self.window_s)
            self.waited_s += 2.0 + self.window_s
        self.readings.append(reading)
        if reading.busy:
            self.busy_checks += 1
            print(f"machine busy{' before ' + label if label else ''}: {reading.text()}", flush=True)
        return not reading.busy

    def summary(self) -> dict[str, Any]:
        """The readings' worst values and the count of busy checks (written with the figures)."""
        if not self.readings:
            return {"checks": 0}
        return {
            "checks": len(self.readings),
            "busy_checks": self.busy_checks,
            "waited_s": round(self.waited_s, 1),
            "other_cores_max": round(max(r.other_cores for r in self.readings), 3),
            "steal_max": round(max(r.steal for r in self.readings), 4),
            "loadavg_1m_max": round(max(r.loadavg_1m for r in self.readings), 2),
            "last": asdict(self.readings[-1]),
        }

    def text(self) -> str:
        """One line for the figures' footer."""
        s = self.summary()
        if not s["checks"]:
            return "machine: not checked"
        return (
            f"machine checks: {s['checks']} (busy {s['busy_checks']}, waited {s['waited_s']:.0f} s); "
            f"other processes up to {s['other_cores_max']:.2f} cores, steal up to {s['steal_max']:.1%}, "
            f"load average up to {s['loadavg_1m_max']:.2f}"
        )

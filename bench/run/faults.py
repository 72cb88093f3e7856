"""Faults injected at a set time during the offload phase of a run: worker signals, a Redis restart or freeze,
failure rates."""

from __future__ import annotations

import re
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from bench.launch.stack import Stack

WORKER_FAULTS = {"worker-sigterm": signal.SIGTERM, "worker-sigkill": signal.SIGKILL}
RATE_FAULTS = {"transient-failures": {"transient_rate": 0.3}, "poison": {"poison_rate": 0.05}}
REDIS_FAULTS = ("redis-restart", "redis-freeze")  # they act on the embedded Redis process
FAULT_NAMES = (*WORKER_FAULTS, *REDIS_FAULTS, *RATE_FAULTS)
_SPEC = re.compile(r"^(?P<name>[a-z-]+)(?:@(?P<at>\d+(?:\.\d+)?)s?)?(?::(?P<down>\d+(?:\.\d+)?)s?)?$")


class FaultError(ValueError):
    """A bad --fault value."""


@dataclass
class Fault:
    """One fault: name, when (seconds into the offload phase) and, for redis-*, how long Redis stays down."""

    name: str
    at_s: float
    down_s: float = 3.0
    fired: bool = False
    record: dict[str, Any] = field(default_factory=dict)


def parse_fault(spec: str, duration_s: float) -> Fault:
    """NAME[@SECONDS][:DOWN_SECONDS], e.g. worker-sigkill@10s or redis-freeze@10s:30s; default at 1/3 of the run."""
    match = _SPEC.match(spec.strip())
    if not match or match["name"] not in FAULT_NAMES:
        raise FaultError(
            f"unknown fault {spec!r} (choose from {', '.join(FAULT_NAMES)}; e.g. worker-sigkill@10s)"
        )
    at = float(match["at"]) if match["at"] else round(duration_s / 3, 1)
    if at >= duration_s:
        raise FaultError(f"fault {spec!r} is set at {at:g} s, after the {duration_s:g} s offload phase ends")
    return Fault(match["name"], at, float(match["down"]) if match["down"] else 3.0)


def rate_overrides(faults: list[Fault]) -> dict[str, float]:
    """Work-profile rates that the failure-rate faults raise for the whole run."""
    out: dict[str, float] = {}
    for fault in faults:
        out.update(RATE_FAULTS.get(fault.name, {}))
    return out


class FaultInjector:
    """Fire due faults (called from the run loop); each runs in a thread so progress keeps moving."""

    def __init__(self, stack: Stack | None, faults: list[Fault], phase: str = "offload") -> None:
        self.stack = stack
        self.phase = phase  # the mode whose load the faults hit (the target's offload-like mode)
        self.faults = [f for f in faults if f.name not in RATE_FAULTS]
        self.rate_faults = [f for f in faults if f.name in RATE_FAULTS]
        self.threads: list[threading.Thread] = []
        self._ending = threading.Event()  # set by join(): a Redis fault still holding ends now

    def tick(self, mode: str, elapsed_s: float) -> None:
        """Fire every fault due by elapsed_s of the fault phase (the offload mode's load)."""
        if mode != self.phase or self.stack is None:
            return
        for fault in self.faults:
            if not fault.fired and elapsed_s >= fault.at_s:
                fault.fired = True
                thread = threading.Thread(
                    target=self._fire, args=(fault,), name=f"fault-{fault.name}", daemon=True
                )
                thread.start()
                self.threads.append(thread)

    def _fire(self, fault: Fault) -> None:
        assert self.stack is not None
        fault.record = {"name": fault.name, "ts": time.time(), "end_ts": None, "detail": {}}
        if fault.name in WORKER_FAULTS:
            victim = next((w for w in self.stack.workers if w.alive()), None)
            if victim is None:
                fault.record["detail"] = {"error": "no live worker to signal"}
                return
            replacement = (
                self.stack.start_worker()
            )  # at once: the queue keeps draining while the victim stops
            signalled = time.monotonic()
            code = self.stack.stop_worker(victim, WORKER_FAULTS[fault.name])
            # exit_s: signal to exit, e.g. a SIGTERM during a Redis hang is bounded by grace + a margin
            fault.record["detail"] = {"worker": victim.name, "pid": victim.pid, "exit_code": code,
                                      "exit_s": round(time.monotonic() - signalled, 3),
                                      "replacement": replacement.name}  # fmt: skip
        elif fault.name in REDIS_FAULTS:
            redis = self.stack.redis
            if redis is None:
                fault.record["detail"] = {"error": f"{fault.name} needs the embedded Redis"}
                return
            # restart: stopped (connections refused); freeze: SIGSTOP, up but answering nothing (a hung Redis)
            if fault.name == "redis-freeze":
                redis.freeze()
            else:
                redis.stop()
            down_ts = time.time()
            try:
                cut = self._ending.wait(fault.down_s)
            finally:  # whatever happens, a frozen Redis is resumed (Stack.stop resumes it too)
                if fault.name == "redis-freeze":
                    redis.thaw()
                else:
                    redis.start()
            fault.record["detail"] = {"down_s": round(time.time() - down_ts, 3)} | (
                {"cut_short": True} if cut else {}
            )
        fault.record["end_ts"] = time.time()

    def join(self, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        """End running faults (a Redis fault ends early) and wait; return the records for faults.json."""
        self._ending.set()
        for thread in self.threads:
            thread.join(timeout_s)
        records = [f.record for f in self.faults if f.record]
        records += [
            {"name": f.name, "ts": None, "end_ts": None, "detail": RATE_FAULTS[f.name]}
            for f in self.rate_faults
        ]
        return records

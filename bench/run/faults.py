"""Faults injected at a set time during the offload phase of a run: worker signals, a Redis restart or freeze,
failure rates; API signals (the API restarted on its port) in every phase with job ids, so the modes that hand
jobs off and the one that keeps them in the API process (inprocess) take the same kill."""

from __future__ import annotations

import re
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from bench.launch.stack import READY_TIMEOUT_S, Stack, StackError

WORKER_FAULTS = {"worker-sigterm": signal.SIGTERM, "worker-sigkill": signal.SIGKILL}
API_FAULTS = {"api-restart": signal.SIGTERM, "api-sigkill": signal.SIGKILL}
RATE_FAULTS = {"transient-failures": {"transient_rate": 0.3}, "poison": {"poison_rate": 0.05}}
REDIS_FAULTS = ("redis-restart", "redis-freeze")  # they act on the embedded Redis process
FAULT_NAMES = (*WORKER_FAULTS, *API_FAULTS, *REDIS_FAULTS, *RATE_FAULTS)
API_STOP_S = 10.0  # api-restart: the graceful stop's bound before SIGKILL (the sample API's own grace is 5 s)
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
    mode: str = ""  # api-*: the phase it fired in (one copy fires per mode with job ids)


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
        self.faults = [f for f in faults if f.name not in RATE_FAULTS and f.name not in API_FAULTS]
        self.rate_faults = [f for f in faults if f.name in RATE_FAULTS]
        self.api_faults = [f for f in faults if f.name in API_FAULTS]
        self.api_fired: list[Fault] = []  # one copy of an api fault per phase it fired in
        self.threads: list[threading.Thread] = []
        self._ending = threading.Event()  # set by join(): a Redis fault still holding ends now

    def tick(self, mode: str, elapsed_s: float) -> None:
        """Fire every fault due by elapsed_s of the fault phase (the offload mode's load); api faults fire
        in every phase whose mode has job ids (elapsed_s counts from that phase's start)."""
        if self.stack is None:
            return
        due = [f for f in self.faults if mode == self.phase and not f.fired and elapsed_s >= f.at_s]
        spec = self.stack.target.modes.get(mode)
        if spec is not None and spec.job_id:
            fired = {(f.name, f.at_s) for f in self.api_fired if f.mode == mode}
            for fault in self.api_faults:
                if (fault.name, fault.at_s) not in fired and elapsed_s >= fault.at_s:
                    fault.fired = True
                    copy = Fault(fault.name, fault.at_s, fault.down_s, True, mode=mode)
                    self.api_fired.append(copy)
                    due.append(copy)
        for fault in due:
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
        elif fault.name in API_FAULTS:
            fault.record["detail"] = self._restart_api(fault)
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

    def _restart_api(self, fault: Fault) -> dict[str, Any]:
        """Signal the API (SIGKILL: a crash; SIGTERM: a deploy's restart), start it again on its port, wait for
        its ready path; what happened, for the fault's record."""
        assert self.stack is not None
        stack, victim, mode = self.stack, self.stack.api, fault.mode
        if victim is None or not victim.alive():
            return {"mode": mode, "error": "no live API process this run started"}
        signalled = time.monotonic()
        code = victim.stop(API_STOP_S, sig=API_FAULTS[fault.name])
        exit_s = time.monotonic() - signalled
        name = f"api-{mode}-{fault.at_s:g}s"
        detail: dict[str, Any] = {"mode": mode, "api": victim.name, "pid": victim.pid, "exit_code": code,
                                  "exit_s": round(exit_s, 3), "replacement": name}  # fmt: skip
        try:
            stack.restart_api(name)  # on the same port, its log beside the first one's
            stack.wait_ready(READY_TIMEOUT_S)
        except StackError as exc:
            detail["error"] = f"the API did not come back: {exc}"
        else:
            detail["down_s"] = round(time.monotonic() - signalled, 3)  # signal to ready again
        return detail

    def join(self, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        """End running faults (a Redis fault ends early) and wait; return the records for faults.json."""
        self._ending.set()
        for thread in self.threads:
            thread.join(timeout_s)
        records = [f.record for f in [*self.faults, *self.api_fired] if f.record]
        records += [
            {"name": f.name, "ts": None, "end_ts": None, "detail": RATE_FAULTS[f.name]}
            for f in self.rate_faults
        ]
        return records

"""Per-load-process generator health: open-model arrival counters and CPU samples (LOADGEN_KEYS)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import psutil

from runfolder.schema import LOADGEN_DIR, LOADGEN_KEYS

LOADGEN_MESSAGE: Final = "ob_loadgen"
WARN_EVERY_S: Final = 10.0
# A CPU sample over a shorter interval is mostly quantisation (the kernel counts CPU time in clock ticks): the
# end-of-test sample taken right after the last periodic one read 0 % or 200 %, inflating cpu_percent_max.
MIN_CPU_INTERVAL_S: Final = 0.5

_log = logging.getLogger("loadtests")


@dataclass
class LoadgenStats:
    """Counters of one load process for one test; the open-model loops increment them."""

    proc: str
    model: str
    late_threshold_ms: float
    scheduled: int = 0
    sent: int = 0
    late: int = 0
    dropped: int = 0
    cpu_percent: list[list[float]] = field(default_factory=list)
    _process: psutil.Process = field(default_factory=psutil.Process, repr=False)
    _primed: bool = False
    _last_cpu_ts: float = 0.0
    _warned: tuple[int, int] = (0, 0)
    _warned_ts: float = 0.0

    def sample_cpu(self) -> None:
        """Append [ts, percent of one core] since the previous call (the first call primes psutil).

        A call less than MIN_CPU_INTERVAL_S after the previous sample is skipped: its interval is too short
        to measure, and the next call then covers it.
        """
        now = time.time()
        if self._primed and now - self._last_cpu_ts < MIN_CPU_INTERVAL_S:
            return
        percent = self._process.cpu_percent(None)
        if self._primed:  # psutil's first call has no interval to measure and returns 0.0
            self.cpu_percent.append([round(now, 3), percent])
        self._primed = True
        self._last_cpu_ts = now

    def warn_if_behind(self) -> None:
        """Log when arrivals were dropped or late since the last warning (at most every WARN_EVERY_S)."""
        now = time.time()
        if (self.late, self.dropped) == self._warned or now - self._warned_ts < WARN_EVERY_S:
            return
        _log.warning(
            "load generator (proc %s) falling behind: %d of %d arrivals dropped, %d sent late (> %.0f ms) so far "
            "(raise --max-in-flight, add --processes, or lower --arrival-rate)",
            self.proc,
            self.dropped,
            self.scheduled,
            self.late,
            self.late_threshold_ms,
        )
        self._warned = (self.late, self.dropped)
        self._warned_ts = now

    def as_dict(self) -> dict[str, Any]:
        """The loadgen/<mode>-<proc>.json content, exactly LOADGEN_KEYS."""
        values = {
            "proc": self.proc,
            "model": self.model,
            "scheduled": self.scheduled,
            "sent": self.sent,
            "late": self.late,
            "dropped": self.dropped,
            "late_threshold_ms": self.late_threshold_ms,
            "cpu_percent": self.cpu_percent,
        }
        return {key: values[key] for key in LOADGEN_KEYS}


def write_loadgen(run_dir: Path, mode: str, data: dict[str, Any]) -> Path:
    """Write loadgen/<mode>-<proc>.json."""
    path = run_dir / LOADGEN_DIR / f"{mode}-{data['proc']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path

"""What every benchmark shares: a clean child environment, the API/worker processes (bench/launch's
launcher), machine facts, results.

The scripts run as `python benchmarks/<name>.py`, so this folder is on sys.path and `import _stack` works.
Each script can write its figures as JSON (`--json PATH`) for run_all.py's final table.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from _verdict import BUSY, MISSED, median_interval, verdict

from bench.launch.procs import ManagedProcess, python_module
from bench.launch.redis_server import free_port
from bench.launch.shell import http_get_json

REPO = Path(__file__).resolve().parent.parent
SHARED_CORES_NOTE = (
    "load generator, API, Redis and worker share the machine's cores (2 noisy, shared cores here): "
    "only ratios measured side by side in one run count"
)


def clean_env(**extra: str) -> dict[str, str]:
    """The parent's environment without LOCUST_*/OFFLOAD_*/REDIS_URL (a stray setting must not leak in)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "OFFLOAD_")) and k != "REDIS_URL"
    }
    env.update(extra)
    return env


def _wait_healthy(proc: ManagedProcess, url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.alive():
        if http_get_json(f"{url}/healthz")[0] == 200:
            return
        time.sleep(0.1)
    proc.stop()
    raise SystemExit(f"error: the server did not start (log: {proc.log_path})")


def start_server(
    cmd: list[str], env: dict[str, str], log: Path, port_flag: bool = False
) -> tuple[ManagedProcess, str]:
    """Start an HTTP server on a free loopback port; returns (process, base URL) once /healthz answers.

    port_flag: pass the port as `--port N` (uvicorn's CLI) rather than OFFLOAD_API_PORT (python -m service.api).
    """
    port = free_port()
    if port_flag:
        cmd = [*cmd, "--port", str(port)]
    env = clean_env(**env, OFFLOAD_API_PORT=str(port), OFFLOAD_API_HOST="127.0.0.1")
    proc = ManagedProcess(Path(log).stem, cmd, env, log, cwd=REPO).start()
    url = f"http://127.0.0.1:{port}"
    _wait_healthy(proc, url)
    return proc, url


def start_api(redis_url: str, log: Path, **env: str) -> tuple[ManagedProcess, str]:
    """`python -m service.api` against redis_url (log level WARNING unless given)."""
    env = {"OFFLOAD_REDIS_URL": redis_url, "OFFLOAD_LOG_LEVEL": "WARNING", **env}
    return start_server(python_module("service.api"), env, log)


def start_worker(redis_url: str, log: Path, **env: str) -> ManagedProcess:
    """`python -m service.worker` against redis_url (log level WARNING unless given)."""
    env = {"OFFLOAD_REDIS_URL": redis_url, "OFFLOAD_LOG_LEVEL": "WARNING", **env}
    proc = ManagedProcess("worker", python_module("service.worker"), clean_env(**env), log, cwd=REPO)
    return proc.start()


def stop(proc: ManagedProcess | None, timeout_s: float = 30.0) -> int | None:
    """SIGTERM a child and wait for it (SIGKILL after timeout_s); its exit code."""
    return proc.stop(timeout_s) if proc is not None else None


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time a process has used so far (/proc/PID/stat), 0 when it is gone."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # fields after the command: state is [0], utime [11], stime [12] (in clock ticks)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine() -> dict[str, Any]:
    """nproc and the CPU model (from /proc/cpuinfo): printed beside every figure."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count() or 0, "cpu_model": model}


@dataclass
class Figure:
    """One benchmark figure against its goal: `>=` goals are floors, `<=` goals are ceilings.

    A figure measured over alternating pairs carries its 95 % interval (low, high: see _verdict.py) and its
    verdict comes from the interval; a single measurement (low/high NaN, pairs 0) is judged by its value.
    busy: a pair was measured while other work used the cores (_machine.py): no verdict then.
    """

    name: str
    measured: float
    goal: float
    op: str  # ">=", "<=", or "info" (printed beside, no goal)
    unit: str = ""
    low: float = math.nan
    high: float = math.nan
    pairs: int = 0
    busy: bool = False

    @classmethod
    def from_pairs(
        cls, name: str, values: list[float], goal: float, op: str, unit: str = "", busy: bool = False
    ) -> Figure:
        """The median of per-pair values with its bootstrap interval."""
        med, low, high = median_interval(values)
        return cls(name, med, goal, op, unit, low, high, len(values), busy)

    @property
    def verdict(self) -> str:
        """met / missed / undecided / machine busy ("" for information)."""
        if self.op == "info":
            return ""
        if self.busy:
            return BUSY
        if self.pairs:
            return verdict(self.low, self.high, self.goal, self.op)
        return verdict(self.measured, self.measured, self.goal, self.op)

    @property
    def met(self) -> bool:
        """Not missed: met, undecided, machine busy or information (only a missed goal fails a run)."""
        return self.verdict != MISSED

    @property
    def ratio(self) -> float:
        """measured / goal (>= goals) or goal / measured (<= goals): >= 1 means met."""
        if self.op == "info":
            return float("nan")
        if self.op == ">=":
            return self.measured / self.goal if self.goal else float("nan")
        return self.goal / self.measured if self.measured > 0 else float("inf")

    def interval_text(self) -> str:
        """ "[low, high] over N pairs", or "" for a single measurement."""
        if not self.pairs:
            return ""
        if not math.isfinite(self.low):
            return f"no interval ({self.pairs} pair{'s' if self.pairs != 1 else ''})"
        return f"95 % CI [{self.low:,.3f}, {self.high:,.3f}]{self.unit} over {self.pairs} pairs"


@dataclass
class Result:
    """A benchmark's figures plus free-form details, written as JSON for run_all.py."""

    bench: str
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def line(self, fig: Figure) -> str:
        """One printable line per figure."""
        if fig.op == "info":
            return f"{fig.name}: {fig.measured:,.3f}{fig.unit}"
        interval = fig.interval_text()
        return (
            f"{fig.name}: {fig.measured:,.3f}{fig.unit}{' (' + interval + ')' if interval else ''} "
            f"goal {fig.op} {fig.goal:g}{fig.unit}: {fig.verdict.upper() if fig.verdict == MISSED else fig.verdict}"
        )

    def report(self, json_path: Path | None) -> int:
        """Print the figures (with the machine and the shared-cores caveat), write JSON; 1 if a goal is missed."""
        m = machine()
        for fig in self.figures:
            print(self.line(fig))
        print(f"machine: {m['nproc']} cores, {m['cpu_model']}; {SHARED_CORES_NOTE}")
        if json_path is not None:
            payload = {
                "bench": self.bench,
                "ts": time.time(),
                "machine": m,
                "figures": [
                    {**asdict(f), "met": f.met, "verdict": f.verdict, "ratio": f.ratio} for f in self.figures
                ],
                "details": self.details,
            }
            json_path.write_text(json.dumps(payload, indent=2, default=str))
        return 0 if all(f.met for f in self.figures) else 1

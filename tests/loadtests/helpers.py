"""Run Locust as a subprocess (gevent stays out of pytest) and read the run folder it writes."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.launch.redis_server import free_port
from runfolder.schema import SAMPLE_COLUMNS

REPO = Path(__file__).resolve().parents[2]
LOADTESTS = REPO / "loadtests"
LOCUST = [sys.executable, "-m", "locust"]


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without LOCUST_*/REDIS settings that would leak into Locust."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "OFFLOAD_")) and k != "REDIS_URL"
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def locust_cmd(host: str, *args: str) -> list[str]:
    """`locust -f loadtests/ --host HOST --headless --only-summary ARGS`."""
    return [*LOCUST, "-f", str(LOADTESTS), "--host", host, "--headless", "--only-summary", *args]


def run_locust(
    host: str, cwd: Path, *args: str, timeout_s: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run one headless Locust to completion; its output is in .stdout (stderr merged)."""
    return subprocess.run(
        locust_cmd(host, *args),
        cwd=cwd,
        env=clean_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def sample_files(run_dir: Path, mode: str) -> list[Path]:
    """samples/<mode>-*.csv of a run folder."""
    return sorted((run_dir / "samples").glob(f"{mode}-*.csv"))


def read_samples(run_dir: Path, mode: str) -> list[dict[str, str]]:
    """Every sample row of mode, after checking each file's header is exactly SAMPLE_COLUMNS."""
    rows: list[dict[str, str]] = []
    for path in sample_files(run_dir, mode):
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            assert tuple(reader.fieldnames or ()) == SAMPLE_COLUMNS, path
            rows.extend(reader)
    return rows


def p99(rows: list[dict[str, str]], column: str) -> float:
    """The 99th percentile of a latency column, computed from the raw samples."""
    return float(np.percentile(np.array([float(r[column]) for r in rows]), 99))


def run_json(run_dir: Path) -> dict[str, Any]:
    """run.json of a run folder."""
    data: dict[str, Any] = json.loads((run_dir / "run.json").read_text())
    return data


def loadgen(run_dir: Path, mode: str) -> list[dict[str, Any]]:
    """loadgen/<mode>-*.json of a run folder."""
    return [json.loads(p.read_text()) for p in sorted((run_dir / "loadgen").glob(f"{mode}-*.json"))]


@dataclass
class Server:
    """A uvicorn subprocess on a free loopback port."""

    proc: subprocess.Popen[bytes]
    url: str

    def stop(self, timeout_s: float = 10) -> int:
        """SIGTERM and wait (SIGKILL after timeout_s); the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def wait_answering(self, path: str, bound_s: float, log: Path) -> None:
        """Return once GET path answers 200; stop it and raise with its log if it exits or takes bound_s."""
        deadline = time.monotonic() + bound_s
        while True:
            try:
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.url} did not start: {log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.05)


def start_testapp(log_dir: Path, **env: str) -> Server:
    """Start tests/loadtests/testapp.py under real uvicorn and wait for /healthz."""
    port = free_port()
    log = (log_dir / f"testapp-{port}.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "tests.loadtests.testapp:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=REPO,
        env=clean_env(**env),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    server = Server(proc, f"http://127.0.0.1:{port}")
    server.wait_answering("/healthz", 20, log_dir / f"testapp-{port}.log")
    return server


@dataclass
class WebUi(Server):
    """A Locust web UI subprocess (no --headless) on a free loopback port; its output goes to log."""

    log: Path

    def output(self) -> str:
        """Everything Locust wrote so far."""
        return self.log.read_text(errors="replace")

    def quit(self) -> int:
        """SIGTERM (Locust's quitting runs: a run still open is finished), wait up to 60 s; the exit code."""
        return self.stop(60)


def start_webui(host: str, cwd: Path, *args: str, **env: str) -> WebUi:
    """`locust -f loadtests/ --config loadtests/locust.conf --host HOST --web-port P ARGS` (the documented UI
    command: the config binds 127.0.0.1); waits until its page answers."""
    port = free_port()
    log = cwd / f"locust-webui-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*LOCUST, "-f", str(LOADTESTS), "--config", str(LOADTESTS / "locust.conf"), "--host", host,
             "--web-port", str(port), *args],
            cwd=cwd, env=clean_env(**env), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    ui = WebUi(proc, f"http://127.0.0.1:{port}", log)
    ui.wait_answering("/", 30, log)
    return ui

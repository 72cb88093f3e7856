"""`offload-bench run` end to end: real embedded Redis, real uvicorn, real workers, real Locust."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench.launch.redis_server import port_in_use
from tests.bench._proctree import TreeWatcher

REPO = Path(__file__).resolve().parents[3]
CLI = [sys.executable, "-m", "bench"]
FAST = ["--pages", "3", "--io-ms", "5", "--cpu-ms", "1", "--warmup", "1s", "--drain-timeout", "20s"]
REQUIRED = ("requests", "failures", "rps", "latency_ms", "target")


def _start(args: list[str], tmp_path: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_") and k != "REDIS_URL"}
    return subprocess.Popen(
        [*CLI, "run", "--out", str(tmp_path / "runs"), *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _only_run(tmp_path: Path) -> Path:
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def test_short_run_all_modes_writes_summary_and_leaves_nothing(tmp_path):
    proc = _start(["--duration", "5s", "--arrival-rate", "15", *FAST], tmp_path)
    watcher = TreeWatcher(proc)
    code = watcher.wait(170)
    out, err = proc.communicate()
    assert code == 0, err.decode()[-3000:]
    assert b"Traceback" not in err
    run_dir = _only_run(tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("schema_version", "run", "modes", "validity"):
        assert key in summary
    assert set(summary["modes"]) == {"noop", "sync", "offload"}
    for mode in summary["modes"].values():
        for key in REQUIRED:
            assert key in mode
        assert set(mode["latency_ms"]) >= {"p50", "p90", "p95", "p99", "p999", "max", "mean"}
        assert mode["requests"] > 0
    jobs = summary["modes"]["offload"]["jobs"]
    assert jobs["accepted"] > 0 and jobs["lost"] == 0 and jobs["completed"] == jobs["accepted"]
    assert (run_dir / "report.html").exists() and (run_dir / "report.md").exists()
    assert not (tmp_path / "latest").exists()  # --out: nothing is written outside it (issue 14.10)
    assert any("service.api" in cmd for cmd in watcher.seen.values()), watcher.seen
    assert watcher.survivors() == []
    api_port = int(json.loads((run_dir / "run.json").read_text())["stack"]["api_url"].rsplit(":", 1)[1])
    assert not port_in_use(api_port)


def test_interrupt_mid_run_stops_everything_and_keeps_data(tmp_path):
    proc = _start(["--duration", "60s", "--arrival-rate", "10", *FAST], tmp_path)
    watcher = TreeWatcher(proc)

    def sampling() -> bool:
        runs = tmp_path / "runs"
        return runs.exists() and any(p.stat().st_size > 300 for p in runs.glob("*/samples/*.csv"))

    assert watcher.wait(60, until=sampling) is None, proc.communicate()[1].decode()[-3000:]
    proc.send_signal(signal.SIGINT)
    code = watcher.wait(60)
    _, err = proc.communicate()
    assert code == 130, err.decode()[-3000:]
    assert b"Traceback" not in err
    run_dir = _only_run(tmp_path)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    assert str(run_dir) in err.decode()  # says where the collected data is
    assert list((run_dir / "samples").glob("*.csv"))
    assert watcher.survivors() == []


def test_host_mode_starts_nothing(tmp_path, api_url):
    proc = _start(
        ["--host", api_url, "--modes", "sync", "--duration", "3s", "--arrival-rate", "5", *FAST], tmp_path
    )
    watcher = TreeWatcher(proc)
    code = watcher.wait(90)
    _, err = proc.communicate()
    assert code == 0, err.decode()[-3000:]
    started = " ".join(watcher.seen.values())
    assert "service.api" not in started and "service.worker" not in started and "redis-server" not in started
    summary = json.loads((_only_run(tmp_path) / "summary.json").read_text())
    assert list(summary["modes"]) == ["sync"] and summary["modes"]["sync"]["requests"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--modes", "noop,bogus"], "unknown mode 'bogus'"),
        (["--duration", "ten"], "bad duration"),
        (["--duration", "5s", "--warmup", "9s"], "shorter than duration"),
        (["--redis-url", "redis://127.0.0.1:1/0"], "unreachable"),
        (["--redis-url", "http://x"], "redis_url"),
        (["--host", "http://127.0.0.1:1"], "does not answer"),
        (["--fault", "meteor"], "unknown fault"),
        (["--host", "http://127.0.0.1:1", "--fault", "api-sigkill@1s"], "needs the stack"),
        (["--config", "missing.toml"], "config file not found"),
    ],
)
def test_usage_errors_are_one_line_exit_2(tmp_path, args, message):
    proc = _start(args, tmp_path)
    out, err = proc.communicate(timeout=60)
    text = err.decode()
    assert proc.returncode == 2, text
    assert text.startswith("error: ") and message in text and "Traceback" not in text
    assert len(text.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()  # nothing started, nothing written


def test_port_in_use_is_a_usage_error(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _start(["--port", str(port)], tmp_path)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and b"already in use" in err

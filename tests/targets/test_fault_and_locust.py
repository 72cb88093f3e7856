"""A worker SIGKILL on the example target (arq re-runs the orphan), and `locust -f loadtests/ --target` alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.launch.stack import Stack
from targets import load_target
from tests.targets.conftest import EXAMPLE_DIR, VENV_BIN
from tests.targets.test_run_target import _run, _summary

EXAMPLE = EXAMPLE_DIR / "target.toml"


def test_worker_sigkill_ends_with_lost_0_after_arq_reruns_the_orphans(tmp_path: Path) -> None:
    # 1 s jobs: some are always running when the worker is killed; arq re-runs them once their in-progress
    # key expires (the example's job_timeout 5 s + 10 s), under the replacement worker
    # the kill comes 4 s in: under a loaded suite the stock worker had run no job yet at 2 s (no orphan to
    # re-run, the test then had nothing to show)
    args = ["--target", str(EXAMPLE), "--duration", "8s", "--warmup", "1s", "--arrival-rate", "6"]
    args += ["--drain-timeout", "45s", "--modes", "offload", "--fault", "worker-sigkill@4s"]
    code, err, run_dir = _run(tmp_path, *args, timeout_s=170, work_ms=1000)
    assert code == 0, err[-3000:]
    assert run_dir is not None
    (fault,) = json.loads((run_dir / "faults.json").read_text())
    assert fault["name"] == "worker-sigkill" and fault["detail"]["exit_code"] == -9
    jobs = _summary(run_dir)["modes"]["offload"]["jobs"]
    assert jobs["accepted"] > 0 and jobs["lost"] == 0 and jobs["completed"] == jobs["accepted"]
    records = [json.loads(line) for line in (run_dir / "jobs" / "offload.jsonl").read_text().splitlines()]
    rerun = [r for r in records if r["executions"] == 2]
    assert rerun and jobs["duplicates"] == len(rerun)  # each orphan ran twice: counted, named by its try
    assert all(r["attempts"][0]["try"] == 2 and r["state"] == "done" for r in rerun)


@pytest.fixture
def example_stack(tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PATH", VENV_BIN + os.pathsep + os.environ["PATH"])
    monkeypatch.setenv("WORK_MS", "20")
    target, path = load_target(EXAMPLE)
    stack = Stack(tmp_path / "logs", target=target, target_dir=path.parent, workers=1, redis_url=redis_url)
    stack.start()
    yield stack
    stack.stop(5)


def test_locust_alone_with_target_writes_the_run_folder_and_report(
    tmp_path: Path, example_stack: Stack
) -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "OFFLOAD_")) and k != "REDIS_URL"
    }
    cmd = [sys.executable, "-m", "locust", "-f", str(Path(__file__).resolve().parents[2] / "loadtests")]
    cmd += ["--headless", "--host", example_stack.api_url, "--redis-url", example_stack.redis_url]
    cmd += ["--target", str(EXAMPLE), "--mode", "offload", "-t", "4s", "--arrival-rate", "10"]
    cmd += ["--drain-timeout-s", "20", "--stop-timeout", "5"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    (run_dir,) = (tmp_path / "reports" / "runs").iterdir()
    assert (run_dir / "report.html").exists() and (run_dir / "report.md").exists()
    summary = _summary(run_dir)
    jobs = summary["modes"]["offload"]["jobs"]
    assert jobs["accepted"] > 0 and jobs["completed"] == jobs["accepted"] and jobs["lost"] == 0
    run = json.loads((run_dir / "run.json").read_text())
    assert run["modes"]["offload"]["tracker"]["name"] == "arq"
    assert (run_dir / "queue" / "offload.csv").exists() and (run_dir / "jobs" / "offload.jsonl").exists()


def test_locust_with_a_bad_target_is_one_error_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('url = "http://127.0.0.1:9"\n[modes.x]\npath = "/{nope}"\n')
    cmd = [sys.executable, "-m", "locust", "-f", str(Path(__file__).resolve().parents[2] / "loadtests")]
    cmd += ["--headless", "--host", "http://127.0.0.1:9", "--target", str(bad), "-t", "1s"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, timeout=60)
    err = proc.stderr.decode()
    assert proc.returncode == 2, err[-2000:]
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        f"error: {bad}: modes.x.path: unknown placeholder {{nope}} (known here: {{port}}, {{redis_url}}, "
        "{redis_host}, {redis_port}, {redis_password}, {python}, {seq}, {uuid}) (see `locust -f loadtests/ --help`, group offload-bench)"
    ]
    assert "Traceback" not in err

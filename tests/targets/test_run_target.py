"""`offload-bench run --target` end to end: the example FastAPI + stock arq app, real processes throughout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.launch.redis_server import free_port
from tests.targets.conftest import EXAMPLE_DIR, VENV_BIN, Procs, example_env

EXAMPLE = EXAMPLE_DIR / "target.toml"
CLI = [sys.executable, "-m", "bench", "run"]
SHORT = ["--duration", "4s", "--warmup", "1s", "--arrival-rate", "15", "--drain-timeout", "30s"]


def _run(
    tmp_path: Path, *args: str, timeout_s: float = 170, work_ms: int = 20
) -> tuple[int, str, Path | None]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_") and k != "REDIS_URL"}
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    env["WORK_MS"] = str(work_ms)
    proc = subprocess.run(
        [*CLI, "--out", str(tmp_path / "runs"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=timeout_s,
    )
    runs = sorted((tmp_path / "runs").iterdir()) if (tmp_path / "runs").exists() else []
    return proc.returncode, proc.stderr.decode(), runs[-1] if runs else None


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def test_example_target_sync_vs_offload_every_job_reconciled(tmp_path: Path) -> None:
    code, err, run_dir = _run(tmp_path, "--target", str(EXAMPLE), *SHORT)
    assert code == 0, err[-3000:]
    assert run_dir is not None and "Traceback" not in err
    summary = _summary(run_dir)
    assert set(summary["modes"]) == {"sync", "offload"}
    assert summary["modes"]["sync"]["latency_ms"]["p50"] > summary["modes"]["offload"]["latency_ms"]["p50"]
    jobs = summary["modes"]["offload"]["jobs"]
    assert jobs["accepted"] > 0 and jobs["completed"] == jobs["accepted"] and jobs["lost"] == 0
    assert jobs["e2e_samples"] > 0 and jobs["queue_wait_ms"]["p50"] is not None
    run = json.loads((run_dir / "run.json").read_text())
    assert run["target"]["file"] == str(EXAMPLE) and run["target"]["tracker"] == "arq"
    assert run["modes"]["offload"]["tracker"]["name"] == "arq"
    assert {"api.log", "worker-1.log"} <= {p.name for p in (run_dir / "logs").iterdir()}
    assert (run_dir / "report.html").exists() and "sync" in (run_dir / "report.md").read_text()


def test_only_offload_against_a_running_api_starts_nothing(
    tmp_path: Path, redis_url: str, procs: Procs
) -> None:
    env = example_env(redis_url)
    url = procs.api(free_port(), env)
    procs.worker(env)
    target = tmp_path / "running.toml"
    target.write_text(
        f'url = "{url}"\n'
        '[modes.offload]\npath = "/tasks/divide"\njson = { x = 1, y = 4, username = "u-{seq}" }\n'
        'expect = [202]\njob_id = "job_id"\n[jobs]\ntracker = "arq"\n'
    )
    code, err, run_dir = _run(tmp_path, "--target", str(target), "--redis-url", redis_url, *SHORT)
    assert code == 0, err[-3000:]
    assert run_dir is not None
    assert sorted(p.name for p in (run_dir / "logs").iterdir()) == ["locust-offload.log"]  # nothing started
    jobs = _summary(run_dir)["modes"]["offload"]["jobs"]
    assert jobs["accepted"] > 0 and jobs["completed"] == jobs["accepted"] and jobs["lost"] == 0


def test_bad_targets_are_one_error_line_and_exit_2(tmp_path: Path) -> None:
    bad_key = tmp_path / "bad.toml"
    bad_key.write_text(EXAMPLE.read_text().replace('ready = "/health"', 'ready = "/health"\nreddy = "/x"'))
    code, err, _ = _run(tmp_path, "--target", str(bad_key), *SHORT)
    assert code == 2 and err.strip().splitlines() == [f"error: {bad_key}: service.reddy: unknown key"]

    code, err, _ = _run(tmp_path, "--target", str(EXAMPLE), "--modes", "noop", *SHORT)
    assert code == 2 and "unknown mode 'noop' (" in err and len(err.strip().splitlines()) == 1

    # only the worker fails: the whole app is copied, so the API (cwd = the target's folder) starts as it should
    app = shutil.copytree(EXAMPLE_DIR, tmp_path / "app")
    missing = app / "target.toml"
    missing.write_text(EXAMPLE.read_text().replace("arq worker.WorkerSettings", "no-such-arq-xyz worker"))
    code, err, run_dir = _run(tmp_path, "--target", str(missing), *SHORT)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err[-3000:]
    assert errors[0].startswith("error: worker-1 exited at start (code 127): ") and "not found" in errors[0]
    assert "api " not in errors[0]  # the API was up: not named


def test_every_process_that_fails_at_start_is_named_in_one_error_line(tmp_path: Path) -> None:
    target = tmp_path / "both.toml"
    target.write_text(
        EXAMPLE.read_text()
        .replace('"uvicorn main:app --host 127.0.0.1 --port {port}"', '"echo no app on {port}; exit 3"')
        .replace('"arq worker.WorkerSettings"', '"echo no worker; exit 4"')
    )
    code, err, _ = _run(tmp_path, "--target", str(target), "--workers", "2", *SHORT)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err[-3000:]
    assert errors[0].startswith("error: api exited at start (code 3): no app on ")
    assert "; worker-1, worker-2 exited at start (code 4): no worker (logs: " in errors[0]

"""A short headless Locust run of every locustfile against the real service (API + worker + Redis).

SMOKE_TESTED is the registry: a locustfile added under loadtests/ without an entry here fails
test_every_locustfile_has_a_smoke_test.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.loadtests.helpers import LOADTESTS, read_samples, run_json, run_locust
from tests.service.conftest import ApiProcess

# locustfile name -> the test function that smoke-tests it
SMOKE_TESTED = {"api.py": "test_api_locustfile_smoke"}


def discovered_locustfiles() -> list[str]:
    """What `locust -f loadtests/` loads: every *.py not starting with '_'."""
    return sorted(p.name for p in LOADTESTS.glob("*.py") if not p.name.startswith("_"))


def test_every_locustfile_has_a_smoke_test() -> None:
    found = discovered_locustfiles()
    assert found, "no locustfile found under loadtests/"
    missing = sorted(set(found) - set(SMOKE_TESTED))
    assert not missing, f"locustfiles without a smoke test (add them to SMOKE_TESTED): {missing}"
    for name, test in SMOKE_TESTED.items():
        assert callable(globals().get(test)), f"{name}: registered smoke test {test} does not exist"


def test_api_locustfile_smoke(stack: ApiProcess, redis_url: str, tmp_path: Path) -> None:
    """Each mode once: samples == Locust's count, semantic checks pass, offload's jobs are exported."""
    # noop: closed model, no --run-dir: the plain `locust -f loadtests/` path makes reports/runs/<id>/ + report
    noop = run_locust(stack.url, tmp_path, "-u", "2", "-r", "10", "-t", "2s", "--mode", "noop")
    assert noop.returncode == 0, noop.stdout[-3000:]
    (noop_dir,) = (tmp_path / "reports" / "runs").iterdir()
    assert (noop_dir / "summary.json").exists() and (noop_dir / "report.md").exists(), noop.stdout[-2000:]
    # sync: closed model into a given run folder (as the bench wrapper does)
    run_dir = tmp_path / "run"
    sync = run_locust(
        stack.url, tmp_path, "-u", "2", "-r", "10", "-t", "2s", "--mode", "sync", "--run-dir", str(run_dir)
    )
    assert sync.returncode == 0, sync.stdout[-3000:]
    # offload: open model, Poisson arrivals, job side through Redis
    offload = run_locust(
        stack.url,
        tmp_path,
        "-t",
        "3s",
        "--mode",
        "offload",
        "--arrival-rate",
        "30",
        "--run-dir",
        str(run_dir),
        "--redis-url",
        redis_url,
        "--drain-timeout-s",
        "20",
    )
    assert offload.returncode == 0, offload.stdout[-3000:]

    for mode, folder, model in (
        ("noop", noop_dir, "closed"),
        ("sync", run_dir, "closed"),
        ("offload", run_dir, "open"),
    ):
        rows = read_samples(folder, mode)
        info = run_json(folder)["modes"][mode]
        assert len(rows) == info["locust_requests"] > 0, (mode, len(rows), info)
        assert info["locust_failures"] == 0 and all(r["ok"] == "1" for r in rows), mode
        assert {r["model"] for r in rows} == {model} and all(r["source_id"] for r in rows), mode
        assert {r["status"] for r in rows} == {"202" if mode == "offload" else "201"}, mode
        assert all(float(r["latency_corrected_ms"]) >= float(r["latency_ms"]) - 0.01 for r in rows), mode

    offload_rows = read_samples(run_dir, "offload")
    job_ids = [r["job_id"] for r in offload_rows]
    assert all(job_ids)
    jobs = [json.loads(line) for line in (run_dir / "jobs" / "offload.jsonl").read_text().splitlines()]
    assert sorted(j["job_id"] for j in jobs) == sorted(job_ids)
    assert {j["state"] for j in jobs} == {"done"}, "the worker drained the backlog within the drain timeout"
    queue_lines = (run_dir / "queue" / "offload.csv").read_text().splitlines()
    assert queue_lines[0] == "ts,ready,deferred,in_progress,dlq,completed" and len(queue_lines) >= 3
    assert int(queue_lines[-1].split(",")[-1]) >= len(job_ids)  # completed counter at the end

"""The job side is optional: without a reachable Redis an offload run still captures its requests."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bench.launch.redis_server import free_port
from loadtests._jobside import connect
from targets import load_target
from tests.loadtests.helpers import Server, read_samples, run_json, run_locust


def test_unreachable_redis_skips_the_job_side_with_one_warning(testapp: Server, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    dead_url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    out = run_locust(
        testapp.url, tmp_path, "-u", "1", "-t", "2s", "--mode", "offload", "--redis-url", dead_url,
        "--run-dir", str(run_dir),
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:]
    assert out.stdout.count("WARNING/loadtests: Redis at") == 1, out.stdout[-3000:]
    assert not (run_dir / "queue").exists() and not (run_dir / "jobs").exists()
    rows = read_samples(run_dir, "offload")
    assert len(rows) == run_json(run_dir)["modes"]["offload"]["locust_requests"] > 0
    assert all(r["job_id"] for r in rows)


def test_the_unreachable_redis_warning_hides_the_url_password(caplog: pytest.LogCaptureFixture) -> None:
    """The warning names the Redis it could not reach, never its password (issue 14.9)."""
    url = f"redis://:s3cret-pw@127.0.0.1:{free_port()}/0"  # nothing listens there
    with caplog.at_level(logging.WARNING, logger="loadtests"):
        assert connect(load_target(None)[0], url, "http://127.0.0.1:1") is None
    assert "Redis at redis://:***@127.0.0.1:" in caplog.text, caplog.text
    assert "s3cret-pw" not in caplog.text

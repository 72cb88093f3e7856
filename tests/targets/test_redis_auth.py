"""An app whose only Redis setting is host:port (no password): `redis_auth = false`, or one line naming the fix.

Real processes throughout: the CLI, the embedded Redis, the example's uvicorn API and stock arq worker.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.targets.conftest import REPO
from tests.targets.test_run_target import SHORT, _run, _summary

HOSTPORT_DIR = REPO / "examples" / "fastapi_arq_hostport"
HOSTPORT = HOSTPORT_DIR / "target.toml"
WARNING = (
    f"warning: the embedded Redis runs without a password (redis_auth = false in {HOSTPORT}); "
    "it listens on 127.0.0.1 only"
)


def test_redis_auth_false_runs_the_host_port_app_with_every_job_done(tmp_path: Path) -> None:
    code, err, run_dir = _run(tmp_path, "--target", str(HOSTPORT), "--modes", "offload", *SHORT)
    assert code == 0, err[-3000:]
    assert run_dir is not None and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("warning:")] == [WARNING]
    jobs = _summary(run_dir)["modes"]["offload"]["jobs"]
    assert jobs["accepted"] > 0 and jobs["completed"] == jobs["accepted"] and jobs["lost"] == 0
    run = json.loads((run_dir / "run.json").read_text())
    assert run["redis"] == "embedded" and run["target"]["redis_requirepass"] is False
    assert run["stack"]["redis_url"].startswith("redis://127.0.0.1:")  # no password to hide


def test_the_same_app_against_a_redis_with_a_password_is_one_error_line_naming_the_fix(
    tmp_path: Path,
) -> None:
    app = shutil.copytree(HOSTPORT_DIR, tmp_path / "app")
    target = app / "target.toml"
    target.write_text(HOSTPORT.read_text().replace("redis_auth = false", ""))
    code, err, run_dir = _run(tmp_path, "--target", str(target), "--modes", "offload", *SHORT)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err[-3000:]
    assert "exited at start (code " in errors[0] and "Authentication" in errors[0]
    assert errors[0].endswith(
        "; the app reached Redis without its password: pass {redis_url} (or {redis_password}) to it in "
        f"[service] env, or set redis_auth = false under [service]; what was collected is kept in {run_dir}"
    )
    assert "warning:" not in err
    assert json.loads((run_dir / "run.json").read_text())["target"]["redis_requirepass"] is True

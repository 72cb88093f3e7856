"""Issue 21: a Celery app nobody here wrote, unmodified, measured through a target file, reconciles every task.

The app (`proj`, Celery's own tutorial project in its source package) is fetched from the package registry by
the line examples/celery_flower_proj/README.md gives a user, beside a copy of the committed target file in a
tmp tree; Flower (PyPI) is its HTTP API and Celery's stock worker runs it. Nothing of it is in this repo.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.targets.conftest import REPO, VENV_BIN

EXAMPLE = REPO / "examples" / "celery_flower_proj"
# what pip prints when it cannot reach the registry (then "No matching distribution", which alone could also
# mean the sdist is gone: that fails the test)
OFFLINE = re.compile(
    r"NewConnectionError|Max retries exceeded|Temporary failure in name resolution|Network is unreachable|"
    r"Connection refused|ProxyError|Could not fetch URL"
)


def _env() -> dict[str, str]:
    """The caller's environment without what would point the app elsewhere; this venv's commands first."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CELERY_", "FLOWER_", "OFFLOAD_")) and k != "REDIS_URL"
    }
    env.update(PATH=VENV_BIN + os.pathsep + env.get("PATH", ""), PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def _fetch_line() -> str:
    """The README's command that fetches the app (the one line a user copies)."""
    text = (EXAMPLE / "README.md").read_text()
    (line,) = [ln for ln in text.splitlines() if "pip download" in ln and "tar xzf" in ln]
    return line


def _fetch_app(root: Path) -> None:
    """Run the README's line from root, the copy's repository root, as a user does from theirs."""
    proc = subprocess.run(
        ["/bin/sh", "-c", _fetch_line()], cwd=root, env=_env(), capture_output=True, timeout=90, check=False
    )
    err = proc.stderr.decode()
    if proc.returncode != 0 and OFFLINE.search(err):
        pytest.skip(f"the package registry cannot be reached: `{_fetch_line()}` failed: {err.strip()[-300:]}")
    assert proc.returncode == 0, err[-3000:]


def test_celery_s_own_proj_app_behind_flower_reconciles_every_task(tmp_path: Path) -> None:
    pytest.importorskip("celery", reason="pip install 'offload-bench[celery]'")
    folder = tmp_path / EXAMPLE.relative_to(REPO)  # the example's place, in a tree of its own
    folder.mkdir(parents=True)
    shutil.copy(EXAMPLE / "target.toml", folder / "target.toml")
    _fetch_app(tmp_path)
    assert (folder / "next-steps" / "proj" / "tasks.py").is_file()  # the app, as Celery ships it

    short = ["--duration", "2s", "--warmup", "1s", "--arrival-rate", "10", "--drain-timeout", "20s"]
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--out", str(tmp_path / "runs"),
         "--target", str(folder / "target.toml"), *short],
        cwd=tmp_path, env=_env(), capture_output=True, timeout=90, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["modes"]) == {"sync", "offload"}
    sync = summary["modes"]["sync"]
    assert sync["requests"] > 0 and sync["failures"] == 0, sync
    jobs = summary["modes"]["offload"]["jobs"]
    assert jobs["accepted"] > 0 and jobs["completed"] == jobs["accepted"] and jobs["lost"] == 0, jobs
    assert jobs["unknown"] == 0 and jobs["pending"] == 0, jobs
    run = json.loads((run_dir / "run.json").read_text())
    assert run["target"]["tracker"] == "celery"
    # the sync requests really ran the task in the worker (Flower's apply waits for its result), and so did the
    # offload ones (a request still in flight at the end may add one)
    worker_log = (run_dir / "logs" / "worker-1.log").read_text()
    ran = len(re.findall(r"Task proj\.tasks\.add\[[0-9a-f-]+\] succeeded", worker_log))
    assert ran >= sync["samples_total"] + jobs["accepted"], worker_log[-2000:]

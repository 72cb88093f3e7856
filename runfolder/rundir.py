"""Create, describe and update a run folder (reports/runs/<run-id>/) and its run.json."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import secrets
import socket
import subprocess
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from runfolder.redact import redact
from runfolder.schema import RUN_FILE, RUN_SCHEMA_VERSION

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RUNS_DIR = Path("reports") / "runs"
_VERSIONED = ("offload-bench", "locust", "arq", "fastapi", "uvicorn", "redis", "pandas", "numpy")


class RunDirError(Exception):
    """A run folder is missing or unreadable; the message is one line for people."""


def new_run_id() -> str:
    """A sortable, unique run id: UTC time plus 4 random hex digits."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def safe_name(name: str) -> str:
    """name made safe as one path component: no separators, no `..`, nothing hidden (names read from files)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.=+-]", "_", name).lstrip(".")
    return cleaned or "_"


def create_run_dir(out: Path | None = None, run_id: str | None = None) -> Path:
    """Make reports/runs/<run-id>/ (or out/<run-id>/) and return it.

    Only the default location also points reports/latest at it: with --out every write stays inside the
    folder the user named (issue 14.10).
    """
    base = Path(out) if out is not None else DEFAULT_RUNS_DIR
    run_dir = base / safe_name(run_id or new_run_id())
    run_dir.mkdir(parents=True, exist_ok=False)
    if base.resolve() == DEFAULT_RUNS_DIR.resolve():
        _point_latest(run_dir)
    init_run_json(run_dir)
    return run_dir


def init_run_json(run_dir: Path) -> dict[str, Any]:
    """Start run.json in run_dir: schema version, id, creation time, status running, machine metadata."""
    return update_run_json(
        run_dir,
        {
            "schema_version": RUN_SCHEMA_VERSION,
            "run_id": Path(run_dir).name,
            "created_ts": time.time(),
            "status": "running",
            "meta": run_metadata(),
            "modes": {},
            "notes": [],
        },
    )


def _point_latest(run_dir: Path) -> None:
    """Replace the `latest` symlink next to the runs folder (reports/latest) atomically; best effort."""
    latest = run_dir.parent.parent / "latest"
    tmp = latest.with_name(f".latest-{os.getpid()}")
    with contextlib.suppress(OSError):
        if tmp.is_symlink():
            tmp.unlink()
        tmp.symlink_to(os.path.relpath(run_dir.resolve(), latest.parent.resolve()))
        tmp.replace(latest)


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def run_metadata() -> dict[str, Any]:
    """Facts that make runs comparable: git commit, host, CPU count, Python, package versions."""
    versions: dict[str, str | None] = {}
    for dist in _VERSIONED:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
        "host": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


def read_run_json(run_dir: Path) -> dict[str, Any]:
    """run.json of run_dir; RunDirError with a one-line message when missing or not JSON."""
    path = Path(run_dir) / RUN_FILE
    if not Path(run_dir).is_dir():
        raise RunDirError(f"run folder not found: {run_dir}")
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunDirError(f"no {RUN_FILE} in {run_dir} (not a run folder?)") from None
    except (OSError, ValueError) as exc:
        raise RunDirError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise RunDirError(f"{path} is not a JSON object")
    return data


def _merge(into: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
    return into


def update_run_json(run_dir: Path, patch: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge patch into run.json and write it atomically (tmp file + rename); return the result.

    Secrets never reach the file: URL passwords and secret-named values (OFFLOAD_ADMIN_TOKEN) are redacted.
    """
    path = Path(run_dir) / RUN_FILE
    current: dict[str, Any] = read_run_json(run_dir) if path.exists() else {}
    merged: dict[str, Any] = redact(_merge(current, patch))
    tmp = path.with_name(f".{RUN_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(merged, indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(path)
    return merged

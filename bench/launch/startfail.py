"""The one line a person reads when a target's processes fail to start: every dead process with its code and
its own log's tail, grouped when alike, and the fix when Redis refused the app for want of its password."""

from __future__ import annotations

import re
from pathlib import Path

from bench.launch.procs import ManagedProcess
from runfolder.redact import redact

LOG_LINES_SHOWN = 5
TAIL_CHARS = 240  # of each process's log in the one error line
_NO_AUTH = re.compile(r"NOAUTH|Authentication required|AuthenticationError")
_LOG_SCAN_BYTES = 64 * 1024


def no_auth_warning(target_file: Path | str) -> str:
    """The one line a run prints when the embedded Redis starts without a password."""
    return (
        "warning: the embedded Redis runs without a password (redis_auth = false in "
        f"{target_file}); it listens on 127.0.0.1 only"
    )


def short_tail(proc: ManagedProcess) -> str:
    """The last whole lines of a process's log that fit in TAIL_CHARS (at least the last), secrets masked."""
    lines = str(redact(proc.log_tail(LOG_LINES_SHOWN))).split(" | ")
    tail = lines.pop()
    while lines and len(lines[-1]) + 3 + len(tail) <= TAIL_CHARS:
        tail = lines.pop() + " | " + tail
    return (tail if len(tail) <= TAIL_CHARS else "..." + tail[-TAIL_CHARS:]) or "no output"


def says_no_auth(proc: ManagedProcess) -> bool:
    """True when the end of a process's log shows Redis's authentication error."""
    try:
        with proc.log_path.open("rb") as f:
            f.seek(max(0, proc.log_path.stat().st_size - _LOG_SCAN_BYTES))
            return bool(_NO_AUTH.search(f.read().decode(errors="replace")))
    except OSError:
        return False


def auth_hint(procs: list[ManagedProcess], passwordless: bool, external: bool) -> str:
    """The fix, when a process's log shows Redis's authentication error; '' otherwise."""
    if passwordless or not any(says_no_auth(p) for p in procs):
        return ""
    hint = "; the app reached Redis without its password: pass {redis_url} (or {redis_password}) to it"
    hint += " in [service] env"
    return hint + ("" if external else ", or set redis_auth = false under [service]")


def by_tail(procs: list[ManagedProcess]) -> dict[tuple[int | None, str], list[str]]:
    """Names of procs grouped by (exit code, log tail): N workers failing alike are named once."""
    groups: dict[tuple[int | None, str], list[str]] = {}
    for proc in procs:
        groups.setdefault((proc.returncode, short_tail(proc)), []).append(proc.name)
    return groups


def exited_line(dead: list[ManagedProcess], log_dir: Path) -> str:
    """Every dead process named with its exit code and log tail, then where the logs are."""
    parts = [
        f"{', '.join(names)} exited at start (code {code}): {tail}"
        for (code, tail), names in by_tail(dead).items()
    ]
    return "; ".join(parts) + f" (logs: {log_dir})"


def not_ready_line(timeout_s: float, what: str, procs: list[ManagedProcess]) -> str:
    """A target still not ready at the deadline: what was missing, and the logs of procs."""
    tails = "; ".join(f"{', '.join(names)}: {tail}" for (_code, tail), names in by_tail(procs).items())
    return f"the target was not ready within {timeout_s:.0f} s ({what})" + (f": {tails}" if tails else "")

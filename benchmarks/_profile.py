"""Optional sampling profiles of a benchmark's server process with py-spy (`pip install py-spy`).

`attach(pid, out)` records until the process exits; `top_frames(out)` reads the collapsed stacks back and
returns the frames with the most samples on top (self) and anywhere on the stack (inclusive).
"""

from __future__ import annotations

import collections
import shutil
import subprocess
import sys
from pathlib import Path

PY_SPY = Path(sys.executable).parent / "py-spy"


def attach(pid: int, out: Path, rate_hz: int = 250, duration_s: int = 0) -> subprocess.Popen[bytes]:
    """Start `py-spy record` on a running process (collapsed stacks in `out`).

    It stops when the pid exits, or after duration_s seconds when that is given.
    """
    exe = str(PY_SPY) if PY_SPY.exists() else shutil.which("py-spy")
    if exe is None:
        raise SystemExit("error: py-spy not found (hint: .venv/bin/pip install py-spy)")
    cmd = [exe, "record", "--pid", str(pid), "--format", "raw", "--rate", str(rate_hz), "--output", str(out)]
    if duration_s > 0:
        cmd += ["--duration", str(duration_s)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def top_frames(path: Path, n: int = 12) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """(self, inclusive) top-n frames as (frame, share of samples) from a collapsed-stack file."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            incl[frame] += count
    if total == 0:
        return [], []
    return (
        [(f, c / total) for f, c in own.most_common(n)],
        [(f, c / total) for f, c in incl.most_common(n)],
    )


def print_top(path: Path, label: str, n: int = 12) -> None:
    """Print the top self and inclusive frames of one profile."""
    own, incl = top_frames(path, n)
    print(f"profile of {label} ({path}):")
    print("  top frames by own samples:")
    for frame, share in own:
        print(f"    {share:6.1%}  {frame}")
    print("  top frames anywhere on the stack:")
    for frame, share in incl:
        print(f"    {share:6.1%}  {frame}")

"""Run every benchmark in sequence and print one table of figures (`make bench`; under 10 minutes).

    .venv/bin/python benchmarks/run_all.py [--only NAME ...] [--quick] [--lock FILE] [--out DIR]

Each benchmark is a child process (`python benchmarks/bench_<name>.py --json ...`) that runs its peer itself
(arq's stock worker, bare Locust, noop, capture off, a pyarrow+numpy floor) in alternating pairs and prints
its own tables; this script collects the figures it writes and prints them together: goal, median of the
pairs, 95 % interval, verdict (met / missed / undecided / machine busy: see _verdict.py and _machine.py).
--lock FILE runs each benchmark under `flock FILE` (a machine shared with other heavy runs: each benchmark
holds the lock for its own few minutes, so others can interleave).
Exit 0 when no goal is missed (undecided and machine busy are not misses), 1 when one is missed, 2 when a
benchmark failed to run.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _stack import REPO, SHARED_CORES_NOTE, machine
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
# name -> extra arguments for `make bench` (chosen so the whole sequence stays under 10 minutes)
BENCHES: dict[str, list[str]] = {
    # Locust's closed-model cross-check is information only (bench_generator measures the generator)
    "offload_path": ["--no-cross-check"],
    "worker": [],
    # the minimal ASGI app serves faster than one Locust process can send: Locust, not the API, is the limit
    "capture": ["--duration-s", "8", "--server", "testapp"],
    "generator": [],
    # 1M samples only: the 10M folder alone takes ~3 min to write (run bench_analysis.py for it)
    "analysis": ["--sizes", "1000000"],
}


def run_one(name: str, quick: bool, lock: Path | None, out: Path) -> tuple[int, dict[str, Any] | None, float]:
    """Run one benchmark; (exit code, its JSON figures or None, seconds)."""
    json_path = out / f"{name}.json"
    cmd = [sys.executable, str(HERE / f"bench_{name}.py"), *BENCHES[name], "--json", str(json_path)]
    if quick:
        cmd.append("--quick")
    if lock is not None:
        cmd = ["flock", str(lock), *cmd]
    t0 = time.perf_counter()
    rc = subprocess.run(cmd, cwd=REPO, check=False).returncode
    wall_s = time.perf_counter() - t0
    data = json.loads(json_path.read_text()) if json_path.exists() else None
    return rc, data, wall_s


def _num(value: float, unit: str = "") -> str:
    return f"{value:,.3f}{unit}" if math.isfinite(value) else "–"


def table(results: dict[str, tuple[int, dict[str, Any] | None, float]]) -> Table:
    """The final table: one row per figure."""
    t = Table(title="offload-bench benchmarks")
    for col, justify in (("benchmark", "left"), ("figure", "left"), ("goal", "right"), ("median", "right"),
                         ("95 % interval", "right"), ("pairs", "right"), ("verdict", "left"),
                         ("run s", "right")):  # fmt: skip
        t.add_column(col, justify=justify)  # type: ignore[arg-type]
    colour = {"met": "green", "missed": "red", "undecided": "yellow", "machine busy": "magenta"}
    for name, (rc, data, wall_s) in results.items():
        if data is None:
            t.add_row(name, f"did not run (exit {rc})", "", "", "", "", "[red]ERROR[/red]", f"{wall_s:.0f}")
            continue
        for fig in data["figures"]:
            unit = fig["unit"]
            low, high = float(fig.get("low", math.nan)), float(fig.get("high", math.nan))
            interval = f"[{_num(low)}, {_num(high)}]" if math.isfinite(low) else ""
            pairs = str(fig.get("pairs") or "")
            if fig["op"] == "info":
                goal, verdict = "", ""
            else:
                goal = f"{fig['op']} {fig['goal']:,g}{unit}"
                v = fig.get("verdict") or ("met" if fig["met"] else "missed")
                verdict = f"[{colour.get(v, 'white')}]{v.upper() if v == 'missed' else v}[/]"
            t.add_row(name, fig["name"], goal, _num(fig["measured"], unit), interval, pairs, verdict,
                      f"{wall_s:.0f}")  # fmt: skip
    return t


def missed(results: dict[str, tuple[int, dict[str, Any] | None, float]]) -> bool:
    """Whether any goal was missed (undecided and machine busy are not misses)."""
    return any(
        (f.get("verdict") == "missed") if "verdict" in f else not f["met"]
        for _, data, _ in results.values()
        if data
        for f in data["figures"]
    )


def main() -> int:
    """Run the selected benchmarks, print the table."""
    parser = argparse.ArgumentParser(description="run every benchmark and print one table")
    parser.add_argument("--only", action="append", choices=list(BENCHES), help="run only these (repeatable)")
    parser.add_argument("--quick", action="store_true", help="each benchmark in its tiny smoke-test mode")
    parser.add_argument("--lock", type=Path, default=None, help="hold `flock FILE` around each benchmark")
    parser.add_argument("--out", type=Path, default=None, help="keep each benchmark's JSON figures here")
    args = parser.parse_args()
    if args.lock is not None and shutil.which("flock") is None:
        print("error: --lock needs the flock command (util-linux)", file=sys.stderr)
        return 2
    names = args.only or list(BENCHES)
    # a piped or logged run gets a table wide enough to read (rich assumes 80 columns without a terminal)
    console = Console() if sys.stdout.isatty() else Console(width=130)
    results: dict[str, tuple[int, dict[str, Any] | None, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-all-") as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        for name in names:
            console.rule(f"bench_{name}.py")
            results[name] = run_one(name, args.quick, args.lock, out)
    console.print(table(results))
    m = machine()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                            check=False).stdout.strip() or "unknown"  # fmt: skip
    console.print(f"{stamp}, commit {commit}; {m['nproc']} cores, {m['cpu_model']}; {SHARED_CORES_NOTE}")
    if args.quick:
        console.print("--quick: smoke-test sizes, the figures mean nothing")
    if any(data is None for _, data, _ in results.values()):
        return 2
    total_s = sum(w for _, _, w in results.values())
    console.print(f"{len(results)} benchmarks in {total_s / 60:.1f} min")
    return 1 if missed(results) else 0


if __name__ == "__main__":
    sys.exit(main())

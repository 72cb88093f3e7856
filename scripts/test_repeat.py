"""Flake hunt: run the test suite N times, each in a new random order, and list every test that failed at least
once with the seeds that replay it.

    make test-repeat N=5                      # the whole suite, 5 times
    .venv/bin/python scripts/test_repeat.py 3 -- tests/targets -n 0   # 3 serial runs of one folder

Each run is `pytest -p no:cacheprovider --randomly-seed=SEED` (pytest-randomly is in the dev extra) plus what
follows `--`; a failure replays with `.venv/bin/pytest --randomly-seed=SEED NODE_ID`. Exit 0 when every run
passed, 1 when any test failed, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
console = Console(highlight=False)


def failures(junit: Path) -> list[str]:
    """Node ids of the tests that failed or errored in one junit XML file."""
    if not junit.exists():
        return ["<the run wrote no results: pytest itself failed, see its output>"]
    bad = []
    for case in ET.parse(junit).iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            path = (case.get("classname") or "").replace(".", "/")
            bad.append(f"{path}.py::{case.get('name')}")
    return bad


def main(argv: list[str] | None = None) -> int:
    """Run the suite N times in random order; print each failed test with its seeds."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", type=int, nargs="?", default=5, help="how many runs (default 5)")
    parser.add_argument("pytest_args", nargs="*", help="after --: passed to pytest (paths, -n 0, -k ...)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("runs must be at least 1")
    failed: dict[str, list[int]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(1, args.runs + 1):
            seed = random.SystemRandom().randrange(1, 2**31)
            junit = Path(tmp) / f"run-{i}.xml"
            cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
            cmd += [f"--randomly-seed={seed}", f"--junitxml={junit}", *args.pytest_args]
            started = time.monotonic()
            with console.status(f"run {i}/{args.runs}: pytest --randomly-seed={seed}"):
                proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
            bad = failures(junit) if proc.returncode != 0 else []
            tail = proc.stdout.strip().splitlines()[-1:] or ["(no output)"]
            verdict = "[green]green[/green]" if not bad else f"[red]{len(bad)} failed[/red]"
            console.print(
                f"run {i}/{args.runs} seed {seed}: {verdict} in {time.monotonic() - started:.0f} s: {tail[0]}"
            )
            for node in bad:
                failed[node].append(seed)
    if not failed:
        console.print(f"every test passed in all {args.runs} runs")
        return 0
    table = Table(title="tests that failed at least once")
    table.add_column("test")
    table.add_column("failed", justify="right")
    table.add_column("seeds (replay: pytest --randomly-seed=SEED TEST)")
    for node, seeds in sorted(failed.items()):
        table.add_row(node, f"{len(seeds)}/{args.runs}", ", ".join(map(str, seeds)))
    console.print(table)
    return 1


if __name__ == "__main__":
    sys.exit(main())

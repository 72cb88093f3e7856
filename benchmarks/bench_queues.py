"""The queue shoot-out (issue 21.5): every library's stock example, offloaded the same way, plain and with a
worker SIGKILL mid-run, under its defaults and its at-least-once settings; plus the sample service's
in-process mode (FastAPI BackgroundTasks' way) beside its offload mode under an API SIGKILL.

    .venv/bin/python benchmarks/bench_queues.py [--duration 15] [--rate 3] [--only rq,celery] [--quick]
                                                [--json PATH] [--out DIR] [--lock FILE] [--no-plot]

Each cell is an ordinary `offload-bench run` (a child process) with its own run folder under one parent folder
(--out, default reports/queues/<UTC time>); every figure of the table is read from the run folders'
summary.json, so each row can be rebuilt with `offload-bench report <run folder>`. Same open-model load for all
(Poisson arrivals at --rate/s, --duration per mode, one worker process, 0.2 s I/O jobs: WORK_MS=200 for the
examples; --pages 1 --io-ms 200 --cpu-ms 0 for the sample service). The settings variable of each example is
read from its target.toml's comment (`<LIB>_SETTINGS=settings_at_least_once`): an example without one (arq)
has one variant, its own settings. Dramatiq is included when examples/fastapi_dramatiq/target.toml exists.

A figure a library cannot give is shown as such ("n/a — ..."), never as 0. Writes the table (rich on stdout,
Markdown in <out>/table.md, JSON with --json) and a plot (<out>/queues.png).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _queues_cells import Cell, rows_of
from _queues_table import markdown, plot, rich_table, saturation_of_folder
from _stack import REPO, SHARED_CORES_NOTE, clean_env
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

LIBS = ("arq", "rq", "celery", "saq", "dramatiq", "sample")
WORK_MS = 200  # the job: 0.2 s of I/O wait (each example's WORK_MS; the sample service's --io-ms)
# the saturation cell: arrivals well above one worker's capacity for a short load, then a drain; (rate/s, load s).
# One worker at its default concurrency: RQ and Celery run 1 job at a time (<= 5/s of 0.2 s jobs), arq and
# SAQ 10 (<= 50/s), the sample worker up to 200 (CPU-bound on this machine, ~300-400/s measured in 22).
SAT_LOAD = {"rq": (15.0, 4.0), "celery": (15.0, 4.0), "arq": (120.0, 3.0), "saq": (120.0, 3.0),
            "sample": (400.0, 3.0)}  # fmt: skip
SAT_DRAIN_S = 60.0
# Dramatiq records no end time under either settings (its Results middleware keeps the result only): no cell
NO_END = {"dramatiq": "n/a — dramatiq keeps no end time (either settings)"}
# the sample service's api-sigkill cell: 1 s jobs (3/s x 1 s = ~3 in the API process on average, not ~0.6)
# so the kill lands on jobs in flight; checked from faults.json + records (the row's "in flight at kill")
SAMPLE_KILL_IO_MS = 1000
_SETTINGS_VAR = re.compile(r"\b([A-Z][A-Z0-9_]*_SETTINGS)=settings_at_least_once\b")


def settings_variable(target: Path) -> str | None:
    """The env var that picks the example's at-least-once settings, from its target.toml's comments."""
    match = _SETTINGS_VAR.search(target.read_text())
    return match[1] if match else None


def cells(libs: list[str], fault_at: float) -> list[Cell]:
    """Every cell of the shoot-out for these libraries, in run order."""
    kill = f"worker-sigkill@{fault_at:g}s"
    out: list[Cell] = []
    for lib in libs:
        if lib == "sample":
            continue
        target = REPO / "examples" / f"fastapi_{lib}" / "target.toml"
        if not target.exists():
            continue
        var = settings_variable(target)
        variants = (
            [("defaults", {var: "settings_defaults"}), ("at-least-once", {var: "settings_at_least_once"})]
            if var
            else [("example", {})]
        )
        rel = str(target.relative_to(REPO))
        for settings, env in variants:
            for fault in ("", kill):
                out.append(Cell(lib, settings, fault, ["offload"], rel, {"WORK_MS": str(WORK_MS), **env}))
        settings, env = variants[0]  # the defaults (arq: the example's own)
        sat = Cell(lib, settings, "", ["offload"], rel, {"WORK_MS": str(WORK_MS), **env})
        if lib in NO_END:
            sat.skip = NO_END[lib]
        else:
            sat.saturation = SAT_LOAD.get(lib, (120.0, 3.0))
        out.append(sat)
    if "sample" in libs:
        profile = ["--pages", "1", "--io-ms", str(SAMPLE_KILL_IO_MS), "--cpu-ms", "0"]
        kill_api = f"api-sigkill@{fault_at:g}s"
        out.append(Cell("sample", "built-in", kill_api, ["inprocess", "offload"], None, args=profile))
        profile = ["--pages", "1", "--io-ms", str(WORK_MS), "--cpu-ms", "0"]
        out.append(
            Cell("sample", "built-in", "", ["offload"], None, args=profile, saturation=SAT_LOAD["sample"])
        )
    return out


def command(cell: Cell, folder: Path, duration: float, warmup: float, rate: float, drain: float) -> list[str]:
    """The `offload-bench run` command line of one cell."""
    if cell.saturation:
        rate, duration = cell.saturation
        drain = max(drain, SAT_DRAIN_S)
    cmd = [str(REPO / ".venv" / "bin" / "offload-bench"), "run"]
    if cell.target:
        cmd += ["--target", cell.target]
    cmd += ["--modes", ",".join(cell.modes), "--workers", "1", "--arrival-rate", f"{rate:g}"]
    cmd += [
        "--arrival",
        "poisson",
        "--seed",
        "42",
        "--duration",
        f"{duration:g}s",
        "--warmup",
        f"{min(warmup, duration / 4):g}s",
    ]
    cmd += ["--drain-timeout", f"{drain:g}s", "--out", str(folder), *cell.args]
    if cell.fault:
        cmd += ["--fault", cell.fault]
    return cmd


def run_cell(
    cell: Cell, cmd: list[str], folder: Path, lock: Path | None, timeout_s: float
) -> tuple[int, Path | None]:
    """Run one cell; (exit code, its run folder or None)."""
    folder.mkdir(parents=True, exist_ok=True)
    if lock is not None:
        cmd = ["flock", str(lock), *cmd]
    venv_bin = str(REPO / ".venv" / "bin")  # the examples' commands (uvicorn, rq, celery, saq, arq) live here
    env = clean_env(**cell.env, PATH=f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}")
    with (folder / "bench_queues.log").open("w") as log:
        log.write(" ".join(f"{k}={v}" for k, v in cell.env.items()) + " " + " ".join(cmd) + "\n")
        log.flush()
        try:
            rc = subprocess.run(
                cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout_s
            ).returncode
        except subprocess.TimeoutExpired:
            rc = 124
    runs = sorted(p.parent for p in folder.glob("*/summary.json"))
    return rc, (runs[-1] if runs else None)


def main() -> int:
    parser = argparse.ArgumentParser(description="the queue shoot-out (issue 21.5)")
    parser.add_argument("--duration", type=float, default=15.0, help="load seconds per mode (default 15)")
    parser.add_argument(
        "--rate", type=float, default=3.0, help="arrivals/s, Poisson (default 3: one worker keeps up)"
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds excluded from the API figures")
    parser.add_argument("--drain", type=float, default=10.0, help="--drain-timeout of each run, seconds")
    parser.add_argument(
        "--kill-at",
        type=float,
        default=None,
        help="seconds into the phase of each SIGKILL (default: half the duration), counted from the load's "
        "first request (e4c550e). The arrivals are seeded (seed 42), the same in every cell: at --rate 3 requests "
        "come at 10.34, 10.46, 10.57, 10.75 s after the first, so 10.6 lands in that burst",
    )
    parser.add_argument("--only", default=None, help=f"comma-separated libraries ({', '.join(LIBS)})")
    parser.add_argument(
        "--quick", action="store_true", help="a tiny smoke test (6 s per mode): figures mean nothing"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the rows as JSON here")
    parser.add_argument("--out", type=Path, default=None, help="parent folder of the run folders")
    parser.add_argument("--lock", type=Path, default=None, help="hold `flock FILE` around each cell")
    parser.add_argument("--plot", type=Path, default=None, help="the PNG (default <out>/queues.png)")
    parser.add_argument("--replot", type=Path, default=None, help="only print the table and redraw the plot of "
                        "an earlier --json file (only the saturation figure is read again from its run folder, if kept)")  # fmt: skip
    args = parser.parse_args()
    if args.replot is not None:
        data = json.loads(args.replot.read_text())
        meta, old_rows = data["meta"], data["rows"]
        for (
            row
        ) in old_rows:  # the saturation figure again from its run folder's job records, where it is kept
            if row.get("saturation") and row.get("run") and (Path(row["run"]) / "jobs").is_dir():
                lib = "the sample service" if row["library"] == "sample" else row["library"]
                row["saturation"] = saturation_of_folder(Path(row["run"]), row["mode"], lib)
        con = Console() if sys.stdout.isatty() else Console(width=200)
        con.print(rich_table(old_rows))
        con.print(f"[dim]{SHARED_CORES_NOTE}[/dim]")
        head = (f"{meta['stamp']} UTC, commit {meta['commit']}, {len(data['cells'])} runs in {meta['wall_s']:.0f} s; "
                f"--duration {meta['duration_s']:g} s, --rate {meta['rate']:g}/s, kill at {meta['fault_at_s']:g} s")  # fmt: skip
        png = args.plot or Path(meta["out"]) / "queues.png"
        plot(old_rows, png, f"queue shoot-out ({head})\n{SHARED_CORES_NOTE}")
        print(markdown(old_rows))
        return 0
    libs = [s.strip() for s in args.only.split(",")] if args.only else list(LIBS)
    if bad := [lib for lib in libs if lib not in LIBS]:
        parser.error(
            f"unknown librar{'ies' if len(bad) > 1 else 'y'} {', '.join(bad)} (choose from {', '.join(LIBS)})"
        )
    if args.lock is not None and shutil.which("flock") is None:
        print("error: --lock needs the flock command (util-linux)", file=sys.stderr)
        return 2
    duration, drain = (6.0, 6.0) if args.quick else (args.duration, args.drain)
    warmup = min(args.warmup, duration / 4)
    # mid-run, counted from the phase's start (warmup included); every cell has the same seeded arrivals, so a
    # fixed moment hits the same instant of the schedule in each: pick one just after a burst (--kill-at)
    fault_at = round(duration / 2, 1) if args.kill_at is None or args.quick else args.kill_at
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = args.out or REPO / "reports" / "queues" / stamp
    out.mkdir(parents=True, exist_ok=True)
    todo = cells(libs, fault_at)
    missing = [
        lib
        for lib in libs
        if lib != "sample" and not (REPO / "examples" / f"fastapi_{lib}" / "target.toml").exists()
    ]
    console = Console() if sys.stdout.isatty() else Console(width=200)
    for lib in missing:
        console.print(f"[yellow]{lib}: no examples/fastapi_{lib}/target.toml — skipped[/yellow]")
    rows: list[dict[str, Any]] = []
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    t0 = time.time()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console) as progress:  # fmt: skip
        task = progress.add_task("cells", total=len(todo))
        for cell in todo:
            if cell.skip:
                rows += rows_of(cell, 0, None)
                progress.console.print(f"{cell.name}: not run ({cell.skip})")
                progress.advance(task)
                continue
            progress.update(task, description=f"{cell.name}: running")
            folder = out / cell.name
            cmd = command(cell, folder, duration, warmup, args.rate, drain)
            timeout_s = duration * len(cell.modes) + max(drain, SAT_DRAIN_S) + 180
            rc, run = run_cell(cell, cmd, folder, args.lock, timeout_s)
            new = rows_of(cell, rc, run)
            rows += new
            state = "ok" if run is not None and rc == 0 else f"exit {rc} (log: {folder / 'bench_queues.log'})"
            progress.console.print(f"{cell.name}: {state}  {run or ''}")
            progress.advance(task)
    wall = time.time() - t0
    console.print(rich_table(rows))
    console.print(f"[dim]{SHARED_CORES_NOTE}[/dim]")
    console.print(
        "[dim]* p99 from fewer than 1,000 samples (the slowest few); run folders: " + str(out) + "[/dim]"
    )
    for row in rows:
        for note in row.get("tracker_notes") or []:
            console.print(f"[dim]{row['library']} {row['settings']} {row['fault']}: {note}[/dim]")
    head = (f"{stamp} UTC, commit {commit}, {len(todo)} runs in {wall:.0f} s; --duration {duration:g} s, --rate "
            f"{args.rate:g}/s, kill at {fault_at:g} s")  # fmt: skip
    (out / "table.md").write_text(f"{head}\n\n{markdown(rows)}\n{SHARED_CORES_NOTE}\n")
    png = args.plot or out / "queues.png"
    plot(rows, png, f"queue shoot-out ({head})\n{SHARED_CORES_NOTE}")
    console.print(f"table: {out / 'table.md'}  plot: {png}")
    if args.json:
        meta = {"stamp": stamp, "commit": commit, "duration_s": duration, "rate": args.rate, "warmup_s": warmup,
                "fault_at_s": fault_at, "work_ms": WORK_MS, "wall_s": wall, "note": SHARED_CORES_NOTE, "out": str(out)}  # fmt: skip
        args.json.write_text(
            json.dumps({"meta": meta, "rows": rows, "cells": [asdict(c) for c in todo]}, indent=1)
        )
    return 0 if all(r.get("exit") == 0 for r in rows) else 2


if __name__ == "__main__":
    sys.exit(main())

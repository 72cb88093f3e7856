"""Benchmark: a full report (summary.json, report.md, report.html, plots) of 1M and 10M samples: its time
against a floor, and its memory.

    .venv/bin/python benchmarks/bench_analysis.py [--sizes 1000000,10000000] [--procs 4] [--data DIR]
        [--pairs 3] [--max-pairs 6] [--budget-s 60] [--baseline-src DIR]

For each size it writes a synthetic run folder (three modes, --procs sample files per mode, one job record
per accepted offload request: a 10M-sample run is ~1 GB of CSV plus ~1 GB of JSON lines), then alternates
report / floor pairs: `offload-bench report` in a child process (imports count, as they do for a user; its
own peak RSS from wait4) and the floor (_analysis_floor.py, a child process too: the same sample columns
read with pyarrow, the same percentiles computed with numpy, the jobs' end-to-end percentiles from the
records). Goals: 1M report time / floor <= 3 (issue 22, median of the pairs with a 95 % bootstrap interval);
peak RSS 1M <= 400 MB, 10M <= 2 GB (issue 15). --baseline-src also times another checkout's report on the
same folder in each pair (information). Exit 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _machine import Watch
from _stack import SHARED_CORES_NOTE, Figure, Result
from _verdict import MET, MISSED, run_pairs

# samples -> (old wall-time goal s: information now, peak RSS goal MB)
GOALS = {1_000_000: (5.0, 400.0), 10_000_000: (30.0, 2048.0)}
RATIO_GOAL = 3.0  # 1M report time / the pyarrow+numpy floor (issue 22)
REPO = Path(__file__).resolve().parent.parent


def generate(run_dir: Path, samples: int, procs: int) -> None:
    """A synthetic run of `samples` requests over three modes (an hour for 10M, as a soak test would be).

    Written by a child process: this process must stay small, because a child's ru_maxrss (wait4) counts the
    high-water RSS of the memory it was forked with (subprocess uses vfork: this process's) - generating 10M
    samples here made every report after it look 3.5 GB large.
    """
    if (run_dir / "run.json").exists():
        print(f"reusing {run_dir}")
        return
    per_mode = samples // 3
    counts = {"noop": per_mode, "sync": per_mode, "offload": samples - 2 * per_mode}
    t0 = time.perf_counter()
    duration_s = max(600.0, samples / 3 / 925)  # ~925 req/s per mode: 10M samples is an hour
    code = (
        "import sys; from pathlib import Path; from analysis.synthetic import write_synthetic_run; "
        f"write_synthetic_run(Path(sys.argv[1]), samples_per_mode={counts!r}, procs={procs}, "
        f"duration_s={duration_s!r}, warmup_s=10.0)"
    )
    subprocess.run([sys.executable, "-c", code, str(run_dir)], cwd=REPO, check=True)
    print(f"generated {samples:,} samples in {time.perf_counter() - t0:.0f} s: {run_dir}", flush=True)


def report(run_dir: Path, out: Path, src: Path | None) -> tuple[float, float]:
    """Run `offload-bench report` (this checkout's, or src's code) as a child; (wall s, its peak RSS MB)."""
    code = "import sys; from bench.cli import main; sys.argv[0] = 'offload-bench'; sys.exit(main())"
    cmd = [sys.executable, "-c", code, "report", str(run_dir), "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=str(src or REPO))
    with tempfile.TemporaryFile() as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=src or REPO)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not the max over all children
        wall_s = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            log.seek(0)
            raise SystemExit(
                f"report failed (exit {proc.returncode}):\n{log.read().decode(errors='replace')}"
            )
    return wall_s, usage.ru_maxrss / 1024  # KiB on Linux


def floor(run_dir: Path) -> float:
    """Wall time of the floor (benchmarks/_analysis_floor.py) as a child process, like the report's."""
    cmd = [sys.executable, str(REPO / "benchmarks" / "_analysis_floor.py"), str(run_dir)]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> int:
    """Generate, then report / floor pairs per size; the ratio with its interval, the memory."""
    parser = argparse.ArgumentParser(description="report time / a pyarrow+numpy floor; peak memory")
    parser.add_argument("--sizes", default="1000000,10000000", help="comma-separated total sample counts")
    parser.add_argument("--procs", type=int, default=4, help="sample files (load processes) per mode")
    parser.add_argument("--data", type=Path, default=None, help="keep (and reuse) the run folders here")
    parser.add_argument("--baseline-src", type=Path, default=None, help="also time this checkout's code")
    parser.add_argument("--pairs", type=int, default=3, help="report/floor pairs at least")
    parser.add_argument("--max-pairs", type=int, default=6, help="pairs at most (while undecided)")
    parser.add_argument("--budget-s", type=float, default=60.0, help="no more pairs after this (per size)")
    parser.add_argument(
        "--quick", action="store_true", help="30k samples (a smoke test, figures meaningless)"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the figures here (for run_all.py)")
    args = parser.parse_args()
    sizes = [30_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    if args.quick:
        args.pairs = args.max_pairs = 1
    figures: list[Figure] = []
    details: dict[str, object] = {"procs": args.procs, "baseline_src": str(args.baseline_src or "")}
    watch = Watch(window_s=0.1 if args.quick else 1.0)
    with tempfile.TemporaryDirectory(prefix="bench-analysis-") as tmp:
        for samples in sizes:
            run_dir = (args.data or Path(tmp)) / f"run-{samples}"
            generate(run_dir, samples, args.procs)
            runs: list[dict[str, float]] = []
            busy: list[bool] = []
            ratio_goal = RATIO_GOAL if samples == 1_000_000 else 0.0
            op = "<=" if ratio_goal else "info"

            def one_pair(i: int, run_dir: Path = run_dir, runs: list[dict[str, float]] = runs,
                         busy: list[bool] = busy, samples: int = samples) -> None:  # fmt: skip
                busy.append(not watch.check(f"{samples:,} pair {i + 1}"))
                got: dict[str, float] = {"pair": float(i)}
                # alternate which goes first, so neither always meets a warmer page cache
                for name in ("report", "floor") if i % 2 == 0 else ("floor", "report"):
                    if name == "floor":
                        got["floor_s"] = floor(run_dir)
                    else:
                        got["report_s"], got["rss_mb"] = report(run_dir, Path(tmp) / "out", None)
                if args.baseline_src is not None:
                    got["baseline_s"], got["baseline_mb"] = report(
                        run_dir, Path(tmp) / "out-b", args.baseline_src
                    )
                runs.append(got)
                print(f"{samples:,} samples, pair {i + 1}: report {got['report_s']:.2f} s (peak RSS "
                      f"{got['rss_mb']:,.0f} MB), floor {got['floor_s']:.2f} s: {got['report_s'] / got['floor_s']:.2f}x",
                      flush=True)  # fmt: skip

            def decided(runs: list[dict[str, float]] = runs, op: str = op, goal: float = ratio_goal) -> bool:
                if op == "info":
                    return True
                fig = Figure.from_pairs("", [r["report_s"] / r["floor_s"] for r in runs], goal, op)
                return fig.verdict in (MET, MISSED)

            run_pairs(one_pair, decided, args.pairs, args.max_pairs, args.budget_s)
            goal_s, goal_mb = GOALS.get(samples, (float("inf"), float("inf")))
            mem_op = "<=" if samples in GOALS else "info"
            figures += [
                Figure.from_pairs(
                    f"report of {samples:,} samples, time / pyarrow+numpy floor",
                    [r["report_s"] / r["floor_s"] for r in runs],
                    ratio_goal,
                    op,
                    "x",
                    busy=any(busy),
                ),  # fmt: skip
                Figure.from_pairs(
                    f"report of {samples:,} samples, peak RSS",
                    [r["rss_mb"] for r in runs],
                    goal_mb,
                    mem_op,
                    " MB",
                    busy=any(busy),
                ),  # fmt: skip
                Figure(
                    f"report of {samples:,} samples, wall time (info)",
                    float(np.median([r["report_s"] for r in runs])),
                    0.0,
                    "info",
                    " s",
                ),  # fmt: skip
                Figure(
                    f"floor of {samples:,} samples, wall time (info)",
                    float(np.median([r["floor_s"] for r in runs])),
                    0.0,
                    "info",
                    " s",
                ),  # fmt: skip
            ]
            if goal_s != float("inf"):
                details[f"old_wall_goal_{samples}"] = goal_s
            if args.baseline_src is not None:
                figures.append(Figure(f"{samples:,}: baseline / this wall time",
                                      float(np.median([r["baseline_s"] / r["report_s"] for r in runs])), 0, "info", "x"))  # fmt: skip
            details[f"runs_{samples}"] = runs
            if args.data is None:  # a 10M folder is ~2 GB: do not keep two at once in the temp dir
                subprocess.run(["rm", "-rf", str(run_dir)], check=False)
    print(watch.text())
    print(f"note: {SHARED_CORES_NOTE}")
    details["machine_checks"] = watch.summary()
    return Result("analysis", figures, details).report(args.json)


if __name__ == "__main__":
    sys.exit(main())

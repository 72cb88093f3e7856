"""Benchmark: 1,000,000 samples -> full report (summary.json, report.md, report.html, plots) in time and memory.

    .venv/bin/python benchmarks/bench_analysis.py [--samples 1000000] [--procs 4] [--keep DIR]

Generates a synthetic run folder (three modes, several sample files per mode, job records for offload), then
runs `offload-bench report` on it in a child process (so imports count, as they do for a user) and prints the
wall time and the child's peak RSS. Budget (issue 4): <= 15 s and <= 1.5 GB on a 2-core machine. Exit 1 when
over budget.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _stack import Figure, Result

from analysis.synthetic import write_synthetic_run

BUDGET_S = 15.0
BUDGET_RSS_MB = 1536.0
REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    """Generate, report, measure."""
    parser = argparse.ArgumentParser(description="time and peak memory of a 1M-sample report")
    parser.add_argument("--samples", type=int, default=1_000_000, help="total samples over three modes")
    parser.add_argument("--procs", type=int, default=4, help="sample files (load processes) per mode")
    parser.add_argument("--keep", type=Path, default=None, help="write the run folder here and keep it")
    parser.add_argument(
        "--quick", action="store_true", help="30k samples (a smoke test, figures meaningless)"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the figures here (for run_all.py)")
    args = parser.parse_args()
    if args.quick:
        args.samples = 30_000
    per_mode = args.samples // 3
    counts = {"noop": per_mode, "sync": per_mode, "offload": args.samples - 2 * per_mode}
    with tempfile.TemporaryDirectory(prefix="bench-analysis-") as tmp:
        run_dir = args.keep or Path(tmp) / "run"
        t0 = time.perf_counter()
        write_synthetic_run(
            run_dir, samples_per_mode=counts, procs=args.procs, duration_s=600.0, warmup_s=10.0
        )
        print(f"generated {args.samples:,} samples in {time.perf_counter() - t0:.1f} s: {run_dir}")
        cli = REPO / ".venv" / "bin" / "offload-bench"
        cmd = [str(cli) if cli.exists() else "offload-bench", "report", str(run_dir)]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate()
        wall_s = time.perf_counter() - t0
        # ru_maxrss of waited-for children is in KiB on Linux: the largest child, i.e. this report
        rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if proc.returncode != 0:
        print(f"report failed (exit {proc.returncode}):\n{err}", file=sys.stderr)
        return 2
    print(
        f"report of {args.samples:,} samples: {wall_s:.2f} s (budget {BUDGET_S:g} s), "
        f"peak RSS {rss_mb:,.0f} MB (budget {BUDGET_RSS_MB:,.0f} MB)"
    )
    result = Result(
        "analysis",
        [
            Figure(f"report of {args.samples:,} samples, wall time", wall_s, BUDGET_S, "<=", " s"),
            Figure(f"report of {args.samples:,} samples, peak RSS", rss_mb, BUDGET_RSS_MB, "<=", " MB"),
        ],
        {"samples": args.samples, "procs": args.procs},
    )
    return result.report(args.json)


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the offload endpoint vs the noop endpoint on the same server, no worker running (issue 15.5).

    .venv/bin/python benchmarks/bench_offload_path.py [--pairs 4] [--duration-s 10] [--rate 200]
        [--locust-pairs 5] [--locust-duration-s 10] [--profile DIR] [--quick] [--json PATH]

One embedded Redis and one API process (`python -m service.api`, uvicorn, one process); no worker, so the
offload path is exactly the critical path plus its enqueue. Figures:
1. max throughput, offload/noop (goal >= 0.9): Debian's wrk (closed loop, -c connections, Lua script for
   the POST bodies, a unique user_id per request), runs alternated ABBA (noop, offload, offload, noop, ...),
   each capped at --duration-s; ratio of the median req/s. Beside it, the CPU time the API process and
   Redis spend per request in each mode (/proc/PID/stat around each run): with wrk, API and Redis on two
   shared cores the API's CPU per request is what the rates depend on, so the ratio follows those two.
2. the offload path's cost at a moderate fixed rate (--rate, 200 req/s): p50 difference offload - noop
   (goal <= 0.2 ms) and p99 difference (goal <= 1 ms). Debian's wrk has no fixed-rate mode, so this uses
   our Locust open model (`--arrival-rate R`, Poisson arrivals, one load process), runs alternated ABBA,
   percentiles with numpy on the raw samples from each request's intended start (no coordinated omission),
   the first --warmup-s of each run dropped; each figure is the median over the ABBA pairs (two runs
   adjacent in time, one per mode) of offload - noop, so a drift of the shared machine's load hits both
   sides of a pair. The generator's own send lateness (start - intended) is printed per run beside: the
   tail the machine adds to both modes.
Once per run, Locust's closed-model max rate on noop is printed beside wrk's (a cross-check of the tools).
--profile DIR: one more wrk run per mode with py-spy on the API (after the measured runs), top frames printed.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import _profile
from _openmodel import open_model_latency, reset_redis, run_locust
from _stack import SHARED_CORES_NOTE, Figure, Result, cpu_seconds, start_api, stop
from _wrk import WRK_LUA, run_wrk
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bench.launch.redis_server import EmbeddedRedis

RATIO_GOAL = 0.9
P50_DIFF_GOAL_MS = 0.2
P99_DIFF_GOAL_MS = 1.0
OPEN_RATE = 200.0  # req/s: "a moderate fixed rate" (issue 15.5)
MODES = ("noop", "offload")


def _order(pairs: int) -> list[str]:
    # ABBA: a linear drift of the machine hits both modes alike
    return [m for i in range(pairs) for m in (MODES if i % 2 == 0 else MODES[::-1])]


def pair_differences(runs: list[dict[str, Any]], key: str) -> list[float]:
    """offload - noop of each ABBA pair (runs 2k and 2k+1: adjacent in time, one of each mode)."""
    diffs = []
    for a, b in zip(runs[0::2], runs[1::2], strict=False):
        by_mode = {a["mode"]: a[key], b["mode"]: b[key]}
        if set(by_mode) == set(MODES):
            diffs.append(by_mode["offload"] - by_mode["noop"])
    return diffs


def pair_difference(runs: list[dict[str, Any]], key: str) -> float:
    """The median over ABBA pairs of offload - noop: a machine whose load drifts hits both runs of a pair."""
    diffs = pair_differences(runs, key)
    return float(statistics.median(diffs)) if diffs else float("nan")


def measured_wrk(
    wrk: str, url: str, mode: str, args: argparse.Namespace, lua: Path, pids: dict[str, int | None]
) -> dict[str, Any]:
    """One wrk run plus the API's and Redis's CPU time per request (us) during it."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    run = run_wrk(wrk, url, mode, args.duration_s, args.connections, args.threads, lua)
    for name, pid in pids.items():
        run[f"{name}_us"] = (cpu_seconds(pid) - before[name]) / max(run["requests"], 1) * 1e6
    return run


def profile_api(
    wrk: str, url: str, args: argparse.Namespace, lua: Path, api_pid: int, out: Path
) -> dict[str, Path]:
    """One wrk run per mode with py-spy on the API (slowed by it: for the frames, not the rate)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for mode in MODES:
        paths[mode] = out / f"api-{mode}.txt"
        spy = _profile.attach(api_pid, paths[mode], duration_s=max(1, round(args.duration_s)))
        run_wrk(wrk, url, mode, args.duration_s, args.connections, args.threads, lua)
        spy.wait(30)
    return paths


def print_tables(console: Console, args: argparse.Namespace, wrk_runs: list[dict[str, Any]],
                 open_runs: list[dict[str, Any]]) -> None:  # fmt: skip
    """The per-run tables of both parts."""
    table = Table(title=f"wrk -t{args.threads} -c{args.connections}, {args.duration_s:g} s runs, ABBA")
    for col in ("run", "endpoint", "req/s", "p50 ms", "p99 ms", "API us/req", "Redis us/req", "non-2xx",
                "socket errors"):  # fmt: skip
        table.add_column(col, justify="right")
    for n, r in enumerate(wrk_runs, 1):
        table.add_row(
            str(n), r["mode"], f"{r['rps']:,.0f}", f"{r.get('p50', 0):.2f}", f"{r.get('p99', 0):.2f}",
            f"{r['api_us']:.0f}", f"{r['redis_us']:.0f}", str(r["non_2xx"]), str(r["socket_errors"]),
        )  # fmt: skip
    console.print(table)
    table = Table(title=f"Locust open model at {args.rate:g} req/s, {args.locust_duration_s:g} s runs, ABBA")
    for col in ("run", "endpoint", "samples", "req/s", "p50 ms", "p99 ms", "p99 actual", "send late p99 ms",
                "late", "dropped", "failed"):  # fmt: skip
        table.add_column(col, justify="right")
    for n, r in enumerate(open_runs, 1):
        table.add_row(
            str(n), r["mode"], f"{r['samples']:,.0f}", f"{r['rps']:,.0f}", f"{r['p50']:.2f}",
            f"{r['p99']:.2f}", f"{r['p99_actual']:.2f}", f"{r['late_p99']:.2f}", f"{r['late']:,.0f}",
            f"{r['dropped']:,.0f}", f"{r['failures']:,.0f}",
        )  # fmt: skip
    console.print(table)


def main() -> int:
    """Run the wrk and Locust comparisons and print the figures."""
    parser = argparse.ArgumentParser(description="offload vs noop endpoint: throughput ratio, latency cost")
    parser.add_argument("--pairs", type=int, default=4, help="wrk runs per mode (alternated ABBA)")
    parser.add_argument("--duration-s", type=float, default=10.0, help="length of each wrk run")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1 leaves a core to the server)")
    parser.add_argument("--rate", type=float, default=OPEN_RATE, help="open-model arrival rate (req/s)")
    parser.add_argument("--locust-pairs", type=int, default=6, help="open-model runs per mode")
    parser.add_argument("--locust-duration-s", type=float, default=10.0, help="length of each Locust run")
    parser.add_argument("--warmup-s", type=float, default=2.0, help="dropped from each Locust run's start")
    parser.add_argument("--no-cross-check", action="store_true", help="skip Locust's closed-model max rate")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy the API; profiles in this folder")
    parser.add_argument("--quick", action="store_true", help="tiny runs (a smoke test, figures meaningless)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here (for run_all.py)")
    args = parser.parse_args()
    if args.quick:
        args.pairs, args.duration_s, args.locust_pairs = 1, 1.0, 1
        args.locust_duration_s, args.warmup_s, args.no_cross_check = 2.0, 0.3, True
    wrk = shutil.which("wrk") or "/usr/bin/wrk"
    if not Path(wrk).exists():
        print("error: wrk not found (hint: apt-get install wrk)", file=sys.stderr)
        return 2
    console = Console()
    wrk_runs: list[dict[str, Any]] = []
    open_runs: list[dict[str, Any]] = []
    cross: dict[str, float] = {}
    spy: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="bench-offload-") as tmp_text:
        tmp = Path(tmp_text)
        lua = tmp / "post.lua"
        lua.write_text(WRK_LUA)
        redis_server = EmbeddedRedis(tmp / "redis")
        api = None
        try:
            redis_server.start()
            api, url = start_api(redis_server.url, tmp / "api.log")
            pids = {"api": api.pid, "redis": redis_server.proc.pid if redis_server.proc else None}
            warmups = () if args.quick else MODES
            steps = 2 * args.pairs + 2 * args.locust_pairs + (0 if args.no_cross_check else 1) + len(warmups)
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task("wrk and Locust runs", total=steps)
                for mode in warmups:  # warm-up: imports, connection pools, Lua script load
                    run_wrk(wrk, url, mode, min(2.0, args.duration_s), args.connections, 1, lua)
                    progress.advance(task)
                for mode in _order(args.pairs):
                    reset_redis(redis_server.url)
                    wrk_runs.append(measured_wrk(wrk, url, mode, args, lua, pids))
                    progress.advance(task)
                for i, mode in enumerate(_order(args.locust_pairs)):
                    reset_redis(redis_server.url)
                    run_dir = tmp / f"open-{i}-{mode}"
                    run_locust(url, mode, args.locust_duration_s, run_dir, rate=args.rate)
                    open_runs.append({"mode": mode, **open_model_latency(run_dir, mode, args.warmup_s)})
                    progress.advance(task)
                if not args.no_cross_check:
                    entry = run_locust(url, "noop", args.duration_s, tmp / "closed-noop", users=32)
                    cross = {
                        "locust_rps": entry["locust_requests"] / (entry["end_ts"] - entry["start_ts"]),
                        "wrk_rps": statistics.median(r["rps"] for r in wrk_runs if r["mode"] == "noop"),
                    }
                    progress.advance(task)
            if args.profile is not None and api.pid is not None:
                spy = profile_api(wrk, url, args, lua, api.pid, args.profile)
        finally:
            stop(api)
            redis_server.cleanup()

    print_tables(console, args, wrk_runs, open_runs)

    def med(runs: list[dict[str, Any]], key: str, mode: str) -> float:
        return float(statistics.median(r[key] for r in runs if r["mode"] == mode))

    rps = {m: med(wrk_runs, "rps", m) for m in MODES}
    api_us = {m: med(wrk_runs, "api_us", m) for m in MODES}
    redis_us = {m: med(wrk_runs, "redis_us", m) for m in MODES}
    p50 = {m: med(open_runs, "p50", m) for m in MODES}
    p99 = {m: med(open_runs, "p99", m) for m in MODES}
    diff50, diff99 = pair_difference(open_runs, "p50"), pair_difference(open_runs, "p99")
    late_p99 = max(med(open_runs, "late_p99", m) for m in MODES)
    print(f"wrk median req/s: noop {rps['noop']:,.0f}, offload {rps['offload']:,.0f}")
    print(
        f"what the rates depend on: the API process's CPU per request (median: noop {api_us['noop']:.0f} us, "
        f"offload {api_us['offload']:.0f} us; Redis {redis_us['noop']:.0f} / {redis_us['offload']:.0f} us) "
        "on cores it shares with wrk and Redis: the ratio follows noop's / offload's API CPU per request"
    )
    print(
        f"open model at {args.rate:g} req/s, medians: p50 noop {p50['noop']:.2f} ms, offload "
        f"{p50['offload']:.2f} ms; p99 noop {p99['noop']:.2f} ms, offload {p99['offload']:.2f} ms; the "
        f"generator's own send lateness p99 {late_p99:.2f} ms (a tail the machine adds to both modes)"
    )
    print(
        "offload - noop per ABBA pair (runs side by side in time): p50 "
        + ", ".join(f"{d:+.2f}" for d in pair_differences(open_runs, "p50"))
        + " ms; p99 "
        + ", ".join(f"{d:+.2f}" for d in pair_differences(open_runs, "p99"))
        + " ms; the figures are their medians"
    )
    if cross:
        print(
            f"cross-check noop max req/s: wrk {cross['wrk_rps']:,.0f}, Locust closed (32 users) "
            f"{cross['locust_rps']:,.0f} (Locust/wrk {cross['locust_rps'] / cross['wrk_rps']:.2f}; "
            "Locust's own CPU shares the cores)"
        )
    print(f"note: {SHARED_CORES_NOTE}")
    for mode, path in spy.items():
        if path.exists():
            _profile.print_top(path, f"the API under wrk, {mode}")
    rate = f"{args.rate:g} req/s"
    result = Result(
        "offload_path",
        [
            Figure("throughput offload/noop (wrk)", rps["offload"] / rps["noop"], RATIO_GOAL, ">="),
            Figure("API CPU per request, noop (wrk)", api_us["noop"], 0.0, "info", " us"),
            Figure("API CPU per request, offload (wrk)", api_us["offload"], 0.0, "info", " us"),
            Figure(
                f"p50 offload - noop at {rate} (open, median of pairs)",
                diff50,
                P50_DIFF_GOAL_MS,
                "<=",
                " ms",
            ),  # fmt: skip
            Figure(
                f"p99 offload - noop at {rate} (open, median of pairs)",
                diff99,
                P99_DIFF_GOAL_MS,
                "<=",
                " ms",
            ),  # fmt: skip
            Figure(f"p99 noop at {rate} (open, info)", p99["noop"], 0.0, "info", " ms"),
            Figure("send lateness p99 of the generator", late_p99, 0.0, "info", " ms"),
        ],
        {"wrk": wrk_runs, "open": open_runs, "cross_check": cross, "args": vars(args)},
    )
    return result.report(args.json)


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the offload endpoint vs the noop endpoint on the same server, no worker running.

    .venv/bin/python benchmarks/bench_offload_path.py [--pairs 3] [--duration-s 10] [--quick] [--json PATH]

One embedded Redis and one API process (`python -m service.api`, uvicorn, one process); no worker, so the
offload path is exactly the critical path plus its enqueue. Two figures (issue 8):
1. max throughput, offload/noop (goal >= 0.8): Debian's wrk (closed loop, -c connections, Lua script for
   the POST bodies, a unique user_id per request), runs alternated ABBA (noop, offload, offload, noop, ...),
   each capped at --duration-s; ratio of the median req/s.
2. p99 difference offload - noop at 50 % of noop's max rate (goal <= 2 ms): Debian's wrk has no fixed-rate
   mode, so this uses our Locust open model (`--arrival-rate R`, Poisson arrivals, one load process), runs
   alternated, p99 with numpy on the raw samples from each request's intended start (no coordinated
   omission), the first --warmup-s of each run dropped.
Once per run, Locust's closed-model max rate on noop is printed beside wrk's (a cross-check of the tools).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import redis
from _stack import REPO, SHARED_CORES_NOTE, Figure, Result, clean_env, start_api, stop
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bench.launch.redis_server import EmbeddedRedis

RATIO_GOAL = 0.8
P99_DIFF_GOAL_MS = 2.0
MODES = ("noop", "offload")

# wrk runs this per thread (setup() in the main one); thread id + counter make every user_id unique
WRK_LUA = """
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
function request()
  counter = counter + 1
  local body = '{"user_id":"wrk-' .. tostring(tid) .. '-' .. counter .. '","name":"bench source"}'
  return wrk.format(nil, nil, nil, body)
end
"""

# `python -m locust`, with Locust's own startup heap (gevent, Locust, requests: tens of thousands of objects)
# frozen out of the garbage collector first: otherwise its full collections stall the load generator for tens
# of ms, and the stall lands as tail latency on whichever endpoint is running (see README). Our locustfile is
# imported by Locust afterwards, as usual.
LOCUST = [
    sys.executable,
    "-c",
    "import gc, sys; import locust.main; gc.collect(); gc.freeze(); sys.argv[0] = 'locust'; "
    "sys.exit(locust.main.main())",
]

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * _UNIT_MS[unit]


def parse_wrk(out: str) -> dict[str, float]:
    """req/s, p50/p99 (ms), requests, non-2xx and socket errors from wrk's --latency output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = {f"p{p}": _ms(v) for p, v in re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M)}
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": rps,
        "requests": requests,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(g) for g in errors.groups()) if errors else 0,
        **lat,
    }


def run_wrk(
    wrk: str, url: str, mode: str, duration_s: float, connections: int, threads: int, lua: Path
) -> dict[str, Any]:
    """One wrk run against POST /<mode>/sources."""
    cmd = [
        wrk, f"-t{threads}", f"-c{connections}", f"-d{duration_s:g}s", "--latency", "--timeout", "5s",
        "-s", str(lua), f"{url}/{mode}/sources",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 30, check=False)
    if out.returncode != 0:
        raise SystemExit(f"error: wrk exited {out.returncode}: {out.stderr.strip()[-300:]}")
    return {"mode": mode, **parse_wrk(out.stdout)}


def run_locust(
    url: str, mode: str, duration_s: float, run_dir: Path, rate: float = 0.0, users: int = 32
) -> dict[str, Any]:
    """One headless Locust run (open model at `rate`, else closed with `users`); its run.json mode entry."""
    load = ["--arrival-rate", f"{rate:g}", "--arrival", "poisson"] if rate > 0 else ["-u", str(users)]
    if rate <= 0:
        load += ["-r", str(users)]
    cmd = [
        *LOCUST, "-f", str(REPO / "loadtests"), "--host", url, "--headless",
        "--only-summary", "-t", f"{max(1, round(duration_s))}s", "--mode", mode, "--run-dir", str(run_dir),
        "--max-in-flight", "2000", *load,
    ]  # fmt: skip
    out = subprocess.run(
        cmd, env=clean_env(), capture_output=True, text=True, timeout=duration_s + 120, check=False
    )
    if out.returncode not in (0, 1):  # 1 = some requests failed: counted below, not fatal
        raise SystemExit(f"error: locust exited {out.returncode}: {out.stderr.strip()[-500:]}")
    entry: dict[str, Any] = json.loads((run_dir / "run.json").read_text())["modes"][mode]
    return entry


def open_model_latency(run_dir: Path, mode: str, warmup_s: float) -> dict[str, float]:
    """p50/p99 (ms, corrected and actual), samples and failures of one open-model run, warmup dropped."""
    frames = [pd.read_csv(p) for p in sorted((run_dir / "samples").glob(f"{mode}-*.csv"))]
    df = pd.concat(frames, ignore_index=True)
    df = df[df["intended_ts"] >= df["intended_ts"].min() + warmup_s]
    ok = df[df["ok"] == 1]
    corrected = ok["latency_corrected_ms"].to_numpy()
    actual = ok["latency_ms"].to_numpy()
    loadgen = [json.loads(p.read_text()) for p in (run_dir / "loadgen").glob(f"{mode}-*.json")]
    return {
        "samples": float(len(df)),
        "failures": float(len(df) - len(ok)),
        "rps": len(df) / (df["intended_ts"].max() - df["intended_ts"].min()),
        "p50": float(np.percentile(corrected, 50)),
        "p99": float(np.percentile(corrected, 99)),
        "p99_actual": float(np.percentile(actual, 99)),
        "late": float(sum(g.get("late", 0) for g in loadgen)),
        "dropped": float(sum(g.get("dropped", 0) for g in loadgen)),
    }


def reset_redis(url: str, timeout_s: float = 30.0) -> None:
    """Empty Redis and compact its AOF before a run: no run pays for an earlier one's data or AOF rewrite.

    Offload writes more bytes per request than noop; an AOF rewrite's fork would land in whichever run.
    """
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
        client.bgrewriteaof()  # type: ignore[no-untyped-call]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            info: dict[str, Any] = client.info("persistence")  # type: ignore[assignment]
            if not info.get("aof_rewrite_in_progress") and not info.get("aof_rewrite_scheduled"):
                return
            time.sleep(0.05)
    finally:
        client.close()


def _order(pairs: int) -> list[str]:
    # ABBA: a linear drift of the machine hits both modes alike
    return [m for i in range(pairs) for m in (MODES if i % 2 == 0 else MODES[::-1])]


def main() -> int:
    """Run the wrk and Locust comparisons and print the figures."""
    parser = argparse.ArgumentParser(description="offload vs noop endpoint: throughput ratio, p99 difference")
    parser.add_argument("--pairs", type=int, default=3, help="wrk runs per mode (alternated ABBA)")
    parser.add_argument("--duration-s", type=float, default=10.0, help="length of each wrk run")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1 leaves a core to the server)")
    parser.add_argument("--rate-fraction", type=float, default=0.5, help="open-model rate / noop max rate")
    parser.add_argument("--locust-pairs", type=int, default=3, help="open-model runs per mode")
    parser.add_argument("--locust-duration-s", type=float, default=10.0, help="length of each Locust run")
    parser.add_argument("--warmup-s", type=float, default=2.0, help="dropped from each Locust run's start")
    parser.add_argument("--no-cross-check", action="store_true", help="skip Locust's closed-model max rate")
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
    with tempfile.TemporaryDirectory(prefix="bench-offload-") as tmp_text:
        tmp = Path(tmp_text)
        lua = tmp / "post.lua"
        lua.write_text(WRK_LUA)
        redis_server = EmbeddedRedis(tmp / "redis")
        api = None
        try:
            redis_server.start()
            api, url = start_api(redis_server.url, tmp / "api.log")
            warmups = () if args.quick else MODES
            steps = 2 * args.pairs + 2 * args.locust_pairs + (0 if args.no_cross_check else 1) + len(warmups)
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task("wrk and Locust runs", total=steps)
                for mode in warmups:  # warm-up: imports, connection pools, Lua script load
                    run_wrk(wrk, url, mode, min(2.0, args.duration_s), args.connections, 1, lua)
                    progress.advance(task)
                for mode in _order(args.pairs):
                    reset_redis(redis_server.url)
                    wrk_runs.append(
                        run_wrk(wrk, url, mode, args.duration_s, args.connections, args.threads, lua)
                    )
                    progress.advance(task)
                noop_max = statistics.median(r["rps"] for r in wrk_runs if r["mode"] == "noop")
                rate = args.rate_fraction * noop_max
                for i, mode in enumerate(_order(args.locust_pairs)):
                    reset_redis(redis_server.url)
                    run_dir = tmp / f"open-{i}-{mode}"
                    run_locust(url, mode, args.locust_duration_s, run_dir, rate=rate)
                    open_runs.append({"mode": mode, **open_model_latency(run_dir, mode, args.warmup_s)})
                    progress.advance(task)
                if not args.no_cross_check:
                    entry = run_locust(url, "noop", args.duration_s, tmp / "closed-noop", users=32)
                    cross = {
                        "locust_rps": entry["locust_requests"] / (entry["end_ts"] - entry["start_ts"]),
                        "wrk_rps": noop_max,
                    }
                    progress.advance(task)
        finally:
            stop(api)
            redis_server.cleanup()

    table = Table(title=f"wrk -t{args.threads} -c{args.connections}, {args.duration_s:g} s runs, ABBA")
    for col in ("run", "endpoint", "req/s", "p50 ms", "p99 ms", "non-2xx", "socket errors"):
        table.add_column(col, justify="right")
    for n, r in enumerate(wrk_runs, 1):
        table.add_row(
            str(n), r["mode"], f"{r['rps']:,.0f}", f"{r.get('p50', 0):.2f}", f"{r.get('p99', 0):.2f}",
            str(r["non_2xx"]), str(r["socket_errors"]),
        )  # fmt: skip
    console.print(table)
    table = Table(title=f"Locust open model at {rate:,.0f} req/s ({args.rate_fraction:.0%} of noop's max)")
    for col in ("run", "endpoint", "samples", "req/s", "p50 ms", "p99 ms", "p99 actual", "late", "dropped"):
        table.add_column(col, justify="right")
    for n, r in enumerate(open_runs, 1):
        table.add_row(
            str(n), r["mode"], f"{r['samples']:,.0f}", f"{r['rps']:,.0f}", f"{r['p50']:.2f}",
            f"{r['p99']:.2f}", f"{r['p99_actual']:.2f}", f"{r['late']:,.0f}", f"{r['dropped']:,.0f}",
        )  # fmt: skip
    console.print(table)

    med = {m: statistics.median(r["rps"] for r in wrk_runs if r["mode"] == m) for m in MODES}
    p99 = {m: statistics.median(r["p99"] for r in open_runs if r["mode"] == m) for m in MODES}
    p50 = {m: statistics.median(r["p50"] for r in open_runs if r["mode"] == m) for m in MODES}
    print(f"wrk median req/s: noop {med['noop']:,.0f}, offload {med['offload']:,.0f}")
    print(
        f"open model at {rate:,.0f} req/s, median p99: noop {p99['noop']:.2f} ms, offload {p99['offload']:.2f} ms"
    )
    if cross:
        print(
            f"cross-check noop max req/s: wrk {cross['wrk_rps']:,.0f}, Locust closed (32 users) "
            f"{cross['locust_rps']:,.0f} (Locust/wrk {cross['locust_rps'] / cross['wrk_rps']:.2f}; "
            "Locust's own CPU shares the cores)"
        )
    print(f"note: {SHARED_CORES_NOTE}")
    result = Result(
        "offload_path",
        [
            Figure("throughput offload/noop (wrk)", med["offload"] / med["noop"], RATIO_GOAL, ">="),
            Figure(
                f"p99 offload - noop at {args.rate_fraction:.0%} of noop max (Locust open)",
                p99["offload"] - p99["noop"],
                P99_DIFF_GOAL_MS,
                "<=",
                " ms",
            ),
            Figure("p50 offload - noop, same runs", p50["offload"] - p50["noop"], 0.0, "info", " ms"),
        ],
        {"wrk": wrk_runs, "open": open_runs, "rate": rate, "cross_check": cross, "args": vars(args)},
    )
    return result.report(args.json)


if __name__ == "__main__":
    sys.exit(main())

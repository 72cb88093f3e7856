"""Benchmark: our load generator's highest on-time open-model rate / Locust's own closed-model max rate.

    .venv/bin/python benchmarks/bench_generator.py [--pairs 3] [--max-pairs 5] [--budget-s 100]
        [--duration-s 4] [--users 20] [--quick] [--json PATH]

The minimal ASGI app (tests/loadtests/testapp.py, under uvicorn) answers POST /noop/sources faster than one
Locust process can send, so the generator, not the server, is the limit. Each pair, in alternating order:
- peer: bare Locust (benchmarks/_locust_bare.py: `FastHttpUser`, closed model, --users, no wait, no capture of
  ours), max rate C = requests / duration from its --json-file;
- ours: one load process of `locust -f loadtests/` in its open model (Poisson arrivals, capture on) at rates
  g x C, g = 0.8 first, then up by 0.2 or down by halves until the verdict flips, then bisection (4 runs in
  all): the highest g whose run sent >= 99 % of its arrivals on time (neither late by more than the late
  threshold, 20 ms by default, nor dropped).
The pair's figure is that g (our highest on-time rate / C): goal >= 0.8 (what our scheduler and capture
cost), median of pairs with a 95 % bootstrap interval (_verdict.py). wrk's max rate on the same endpoint
(Debian's wrk, when installed) is printed as information: our rate / wrk's.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _machine import Watch
from _openmodel import run_locust
from _stack import REPO, SHARED_CORES_NOTE, Figure, Result, clean_env, start_server, stop
from _verdict import MET, MISSED, run_pairs
from _wrk import WRK_LUA, run_wrk
from bench_capture import UVICORN
from rich.console import Console
from rich.table import Table

GOAL = 0.8  # issue 22
ON_TIME = 0.99
BARE = REPO / "benchmarks" / "_locust_bare.py"


def bare_locust(url: str, duration_s: int, users: int, tmp: Path) -> dict[str, float]:
    """One bare Locust run (FastHttpUser, closed model); its max rate (req/s) and failures."""
    out = tmp / "bare.json"
    cmd = [
        sys.executable, "-m", "locust", "-f", str(BARE), "--host", url, "--headless", "--only-summary",
        "-u", str(users), "-r", str(users), "-t", f"{duration_s}s", "--json-file", str(out.with_suffix("")),
        "--exit-code-on-error", "0",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, env=clean_env(), capture_output=True, text=True,
                          timeout=duration_s + 120, check=False)  # fmt: skip
    if not out.exists() and out.with_suffix("").exists():  # Locust versions differ on adding ".json"
        out = out.with_suffix("")
    if proc.returncode != 0 or not out.exists():
        raise SystemExit(f"error: bare locust exited {proc.returncode}: {proc.stderr[-500:]}")
    stats = [s for s in json.loads(out.read_text()) if s.get("num_requests")]
    if not stats:  # a machine so busy that Locust's start-up ate the whole run
        raise SystemExit(f"error: bare Locust sent no request in {duration_s} s (the machine is too busy)")
    requests = sum(s["num_requests"] for s in stats)
    span_s = max(s["last_request_timestamp"] for s in stats) - min(s["start_time"] for s in stats)
    return {"rate": requests / span_s, "requests": float(requests),
            "failures": float(sum(s["num_failures"] for s in stats))}  # fmt: skip


def open_run(url: str, rate: float, duration_s: int, run_dir: Path) -> dict[str, float]:
    """One open-model run of our generator (one process, Poisson) at `rate`: the share sent on time."""
    run_locust(url, "noop", duration_s, run_dir, rate=rate)
    (gen,) = [json.loads(p.read_text()) for p in (run_dir / "loadgen").glob("noop-*.json")]
    scheduled = max(int(gen["scheduled"]), 1)
    on_time = 1.0 - (int(gen["late"]) + int(gen["dropped"])) / scheduled
    return {"rate": rate, "scheduled": float(scheduled), "sent": float(gen["sent"]), "late": float(gen["late"]),
            "dropped": float(gen["dropped"]), "on_time": on_time}  # fmt: skip


def find_highest(ok: Callable[[float], bool], start: float = GOAL, runs: int = 5) -> float:
    """The highest g for which ok(g) holds, within `runs` probes: from `start`, up by 0.2 or down by halves
    until the verdict flips, then bisection between the highest pass and the lowest fail (0 if none passed)."""
    good, bad = 0.0, math.inf
    g = start
    for _ in range(runs):
        if ok(g):
            good = g
        else:
            bad = g
        if math.isinf(bad):
            g = round(good + 0.2, 3)
        elif good == 0.0:
            g = round(bad / 2, 3)
        else:
            g = round((good + bad) / 2, 3)
    return good


def search(url: str, peer_rate: float, duration_s: int, tmp: Path, runs: list[dict[str, Any]],
           probes: int) -> float:  # fmt: skip
    """The highest g (x peer_rate) our generator sends on time (find_highest over open-model runs)."""

    def ok(g: float) -> bool:
        run = open_run(url, g * peer_rate, duration_s, tmp / f"open-{len(runs)}")
        runs.append({"g": g, **run})
        return run["on_time"] >= ON_TIME

    return find_highest(ok, GOAL, probes)


def main() -> int:
    """Pairs of (bare Locust max rate, our highest on-time open-model rate); the ratio with its interval."""
    parser = argparse.ArgumentParser(
        description="our open-model on-time rate / bare Locust's closed max rate"
    )
    parser.add_argument("--pairs", type=int, default=3, help="pairs at least")
    parser.add_argument("--max-pairs", type=int, default=5, help="pairs at most (while undecided)")
    parser.add_argument("--budget-s", type=float, default=100.0, help="no more pairs after this")
    parser.add_argument("--duration-s", type=int, default=4, help="length of each run")
    parser.add_argument("--users", type=int, default=20, help="bare Locust's users (no wait time)")
    parser.add_argument("--quick", action="store_true", help="tiny runs (a smoke test, figures meaningless)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here (for run_all.py)")
    args = parser.parse_args()
    steps = 4
    if args.quick:
        args.pairs = args.max_pairs = 1
        args.duration_s, args.users, steps = 2, 5, 1
    console = Console()
    watch = Watch(window_s=0.1 if args.quick else 1.0)
    pairs: list[dict[str, Any]] = []
    wrk_rate = float("nan")
    wrk = shutil.which("wrk")
    with tempfile.TemporaryDirectory(prefix="bench-generator-") as tmp_text:
        tmp = Path(tmp_text)
        server = None
        try:
            server, url = start_server([*UVICORN, "tests.loadtests.testapp:app"], {}, tmp / "app.log",
                                       port_flag=True)  # fmt: skip

            def one_pair(i: int) -> None:
                free = watch.check(f"pair {i + 1}")
                runs: list[dict[str, Any]] = []
                sub = tmp / f"pair-{i}"
                sub.mkdir()
                if i % 2 == 0:
                    peer = bare_locust(url, args.duration_s, args.users, sub)
                    g = search(url, peer["rate"], args.duration_s, sub, runs, steps)
                else:  # ours first: searched around the previous pair's peer rate, then scaled to this one's
                    prev = pairs[-1]["peer"]["rate"]
                    g_prev = search(url, prev, args.duration_s, sub, runs, steps)
                    peer = bare_locust(url, args.duration_s, args.users, sub)
                    g = g_prev * prev / peer["rate"]
                best = g * peer["rate"] if i % 2 == 0 else g_prev * prev
                pairs.append({"pair": i, "peer": peer, "runs": runs, "ratio": g, "ours_rate": best,
                              "busy": not free})  # fmt: skip
                print(f"pair {i + 1}: bare Locust {peer['rate']:,.0f} req/s; ours on time up to {best:,.0f} "
                      f"req/s: {g:.3f}", flush=True)  # fmt: skip

            def decided() -> bool:
                fig = Figure.from_pairs("", [p["ratio"] for p in pairs], GOAL, ">=")
                return fig.verdict in (MET, MISSED)

            run_pairs(one_pair, decided, args.pairs, args.max_pairs, args.budget_s)
            if wrk is not None and args.quick:
                wrk = None  # a smoke test: no wrk run
            if wrk is not None:
                lua = tmp / "post.lua"
                lua.write_text(WRK_LUA)
                wrk_rate = run_wrk(wrk, url, "noop", max(args.duration_s, 2), 32, 1, lua)["rps"]
        finally:
            stop(server)
    table = Table(title=f"open-model runs of our generator (one process, Poisson, {args.duration_s} s each)")
    for col in ("pair", "x bare", "req/s", "scheduled", "sent", "late", "dropped", "on time"):
        table.add_column(col, justify="right")
    for p in pairs:
        for r in p["runs"]:
            table.add_row(str(p["pair"] + 1), f"{r['g']:.2f}", f"{r['rate']:,.0f}", f"{r['scheduled']:,.0f}",
                          f"{r['sent']:,.0f}", f"{r['late']:,.0f}", f"{r['dropped']:,.0f}", f"{r['on_time']:.2%}")  # fmt: skip
    console.print(table)
    ours = float(np.median([p["ours_rate"] for p in pairs])) if pairs else float("nan")
    peer = float(np.median([p["peer"]["rate"] for p in pairs])) if pairs else float("nan")
    figures = [
        Figure.from_pairs(
            "open-model on-time rate, ours / bare Locust (FastHttpUser, closed)",
            [p["ratio"] for p in pairs],
            GOAL,
            ">=",
            busy=any(p["busy"] for p in pairs),
        ),  # fmt: skip
        Figure("bare Locust max rate (info)", peer, 0.0, "info", " req/s"),
        Figure("our highest on-time open-model rate (info)", ours, 0.0, "info", " req/s"),
    ]
    if wrk is not None:
        figures.append(Figure("ours / wrk max rate (info)", ours / wrk_rate, 0.0, "info"))
        print(f"wrk -c32 max rate on the same endpoint: {wrk_rate:,.0f} req/s")
    elif not args.quick:
        print("wrk not found: the ours / wrk line is skipped (apt-get install wrk)")
    print(watch.text())
    print(f"note: {SHARED_CORES_NOTE}; the server (uvicorn) takes one of them")
    details = {"pairs": pairs, "wrk_rps": wrk_rate, "args": vars(args), "machine_checks": watch.summary()}
    return Result("generator", figures, details).report(args.json)


if __name__ == "__main__":
    sys.exit(main())

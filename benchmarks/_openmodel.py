"""Our Locust open model as a fixed-rate load for a benchmark: one run, its latency from the raw samples."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import redis
from _stack import REPO, clean_env

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
    late_ms = (df["start_ts"] - df["intended_ts"]).to_numpy() * 1000.0
    loadgen = [json.loads(p.read_text()) for p in (run_dir / "loadgen").glob(f"{mode}-*.json")]
    return {
        "samples": float(len(df)),
        "failures": float(len(df) - len(ok)),
        "rps": len(df) / (df["intended_ts"].max() - df["intended_ts"].min()),
        "p50": float(np.percentile(corrected, 50)),
        "p99": float(np.percentile(corrected, 99)),
        "p99_actual": float(np.percentile(actual, 99)),
        "late_p99": float(np.percentile(late_ms, 99)),
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

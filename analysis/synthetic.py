"""Write a synthetic, seeded run folder in the schema.py layout (for tests, the benchmark and demos)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from runfolder import schema

# Log-normal latency per mode: (median ms, sigma). Offload answers fast; sync carries the backfill.
LATENCY_PROFILE: dict[str, tuple[float, float]] = {
    "noop": (4.0, 0.4),
    "sync": (450.0, 0.5),
    "offload": (9.0, 0.5),
}
START_TS = 1_700_000_000.0


def _samples(
    mode: str, n: int, t0: float, duration_s: float, model: str, rng: np.random.Generator
) -> pd.DataFrame:
    median_ms, sigma = LATENCY_PROFILE.get(mode, (50.0, 0.5))
    intended = np.sort(rng.uniform(t0, t0 + duration_s, n))
    lag_ms = rng.exponential(2.0, n) if model == "open" else np.zeros(n)
    latency = rng.lognormal(np.log(median_ms), sigma, n)
    ok = rng.random(n) >= 0.002
    status = np.where(ok, 202 if mode == "offload" else 201, 500)
    job_id = np.where(ok & (mode == "offload"), np.char.add("j", np.arange(n).astype(str)), "")
    return pd.DataFrame(
        {
            "intended_ts": intended.round(6),
            "start_ts": (intended + lag_ms / 1000).round(6),
            "latency_ms": latency.round(3),
            "latency_corrected_ms": (latency + lag_ms).round(3),
            "mode": mode,
            "name": f"POST /{mode}/sources",
            "status": status,
            "ok": ok.astype(int),
            "error": np.where(ok, "", "HTTP 500"),
            "bytes": 64,
            "job_id": job_id,
            "source_id": "",
            "model": model,
            "proc": "",
        },
        columns=list(schema.SAMPLE_COLUMNS),
    )


def _job_lines(accepted: pd.DataFrame, rng: np.random.Generator) -> list[str]:
    """Lifecycle records: ~96 % done (some after a retry), 1 % dead, rest pending at export."""
    n = len(accepted)
    enq = accepted["start_ts"].to_numpy() + accepted["latency_ms"].to_numpy() / 1000
    wait = rng.exponential(0.05, n)
    run = rng.lognormal(np.log(0.4), 0.3, n)
    fate = rng.random(n)
    lines = []
    for i, job_id in enumerate(accepted["job_id"].to_numpy()):
        start = enq[i] + wait[i]
        attempts: list[dict[str, Any]] = [
            {"try": 1, "start_ts": start, "end_ts": start + run[i], "outcome": "success"}
        ]
        state, done_ts, dead_ts = "done", start + run[i], None
        if fate[i] < 0.01:
            attempts[0]["outcome"], state, done_ts, dead_ts = "dead", "dead", None, start + run[i]
        elif fate[i] < 0.03:
            attempts[0]["end_ts"], attempts[0]["outcome"] = None, None
            state, done_ts = "running", None
        elif fate[i] < 0.08:
            attempts[0]["outcome"] = "retry"
            attempts.append(
                {"try": 2, "start_ts": done_ts + 0.1, "end_ts": done_ts + 0.5, "outcome": "success"}
            )
            done_ts += 0.5
        rec = {
            "job_id": job_id, "source_id": "", "enqueued_ts": enq[i], "state": state, "attempts": attempts,
            "done_ts": done_ts, "dead_ts": dead_ts, "redrives": 0, "executions": len(attempts),
        }  # fmt: skip
        lines.append(json.dumps(rec))
    return lines


def write_synthetic_run(
    run_dir: Path,
    samples_per_mode: dict[str, int] | None = None,
    procs: int = 2,
    model: str = "closed",
    duration_s: float = 60.0,
    warmup_s: float = 5.0,
    seed: int = 1,
) -> Path:
    """Write run.json, samples (procs files per mode), loadgen, queue and jobs for offload; return run_dir."""
    rng = np.random.default_rng(seed)
    counts = samples_per_mode or {"noop": 2000, "sync": 2000, "offload": 2000}
    for sub in (schema.SAMPLES_DIR, schema.LOADGEN_DIR, schema.QUEUE_DIR, schema.JOBS_DIR):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    modes_meta: dict[str, Any] = {}
    t0 = START_TS
    for mode, n in counts.items():
        df = _samples(mode, n, t0, duration_s, model, rng)
        proc = np.arange(n) % procs
        for p in range(procs):
            part = df[proc == p].assign(proc=f"p{p}")
            part.to_csv(run_dir / schema.SAMPLES_DIR / f"{mode}-p{p}.csv", index=False)
            (run_dir / schema.LOADGEN_DIR / f"{mode}-p{p}.json").write_text(
                json.dumps({"proc": f"p{p}", "model": model, "scheduled": len(part), "sent": len(part),
                            "late": 0, "dropped": 0, "late_threshold_ms": 50.0,
                            "cpu_percent": [[t0 + s, 30.0] for s in range(0, int(duration_s), 5)]})
            )  # fmt: skip
        end = t0 + duration_s
        modes_meta[mode] = {"start_ts": t0, "end_ts": end, "host": "127.0.0.1:8000", "locust_requests": n,
                            "locust_failures": int((df["ok"] == 0).sum())}  # fmt: skip
        if mode == "offload":
            accepted = df[df["ok"] == 1]
            (run_dir / schema.JOBS_DIR / "offload.jsonl").write_text(
                "\n".join(_job_lines(accepted, rng)) + "\n"
            )
            ts = np.arange(t0, end + 10.0, 1.0)
            depth = np.where(ts < end, rng.integers(0, 20, len(ts)), 0)
            pd.DataFrame(
                {
                    "ts": ts,
                    "ready": depth,
                    "deferred": 0,
                    "in_progress": np.minimum(depth, 8),
                    "dlq": 0,
                    "completed": np.arange(len(ts)) * 10,
                }  # fmt: skip
            ).to_csv(run_dir / schema.QUEUE_DIR / "offload.csv", index=False)
        t0 = end + 5.0
    run = {
        "schema_version": schema.RUN_SCHEMA_VERSION, "run_id": run_dir.name, "created_ts": START_TS,
        "status": "complete",
        "meta": {"git_commit": "synthetic", "git_dirty": False, "host": "synthetic", "cpu_count": 2,
                 "python": "3.11", "platform": "synthetic", "versions": {}},
        "load": {"model": model, "users": 10, "spawn_rate": 10, "arrival_rate": None, "arrival": "constant",
                 "shape": None, "duration_s": duration_s, "warmup_s": warmup_s, "processes": procs,
                 "max_in_flight": None, "seed": seed},
        "work_profile": {}, "workers": 1, "redis": "embedded", "modes": modes_meta, "faults": [], "notes": [],
    }  # fmt: skip
    (run_dir / schema.RUN_FILE).write_text(json.dumps(run, indent=2))
    return run_dir

"""Build small run folders for analysis tests: samples given as arrays, everything else filled in."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from runfolder import schema
from tests.scripts import console_script

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "fixtures" / "golden_run"
CLI = console_script("offload-bench")
T0 = 1_700_000_000.0


def samples_frame(
    mode: str,
    latency_ms: np.ndarray,
    *,
    corrected_ms: np.ndarray | None = None,
    ok: np.ndarray | None = None,
    status: np.ndarray | None = None,
    start: float = T0,
    duration_s: float = 60.0,
    model: str = "closed",
    proc: str = "p0",
) -> pd.DataFrame:
    """Samples in the schema's columns, evenly spread over duration_s."""
    n = latency_ms.size
    ts = start + np.arange(n) * (duration_s / max(n, 1))
    ok = np.ones(n, dtype=int) if ok is None else ok.astype(int)
    if status is None:
        status = np.where(ok == 1, 202 if mode == "offload" else 201, 500)
    job_id = np.where(ok == 1, np.char.add("j", np.arange(n).astype(str)), "") if mode == "offload" else ""
    return pd.DataFrame(
        {
            "intended_ts": ts,
            "start_ts": ts,
            "latency_ms": latency_ms,
            "latency_corrected_ms": latency_ms if corrected_ms is None else corrected_ms,
            "mode": mode,
            "name": f"POST /{mode}/sources",
            "status": status,
            "ok": ok,
            "error": np.where(ok == 1, "", "HTTP 500"),
            "bytes": 10,
            "job_id": job_id,
            "source_id": "",
            "model": model,
            "proc": proc,
        },  # fmt: skip
        columns=list(schema.SAMPLE_COLUMNS),
    )


def write_run(
    run_dir: Path,
    frames: dict[str, pd.DataFrame],
    *,
    model: str = "closed",
    warmup_s: float = 0.0,
    status: str = "complete",
    modes_meta: dict[str, dict[str, Any]] | None = None,
    loadgen: dict[str, dict[str, Any]] | None = None,
    queue: pd.DataFrame | None = None,
) -> Path:
    """Write run.json and one sample file per mode (plus optional loadgen/queue files); return run_dir."""
    (run_dir / schema.SAMPLES_DIR).mkdir(parents=True, exist_ok=True)
    meta: dict[str, dict[str, Any]] = {}
    for mode, df in frames.items():
        df.to_csv(run_dir / schema.SAMPLES_DIR / f"{mode}-p0.csv", index=False)
        start = float(df["intended_ts"].min()) if len(df) else T0
        meta[mode] = {"start_ts": start, "end_ts": float(df["intended_ts"].max()) + 0.001 if len(df) else T0 + 60,
                      "host": "http://127.0.0.1:1", "locust_requests": len(df), "locust_failures": 0}  # fmt: skip
    for mode, patch in (modes_meta or {}).items():
        meta.setdefault(mode, {}).update(patch)
    for mode, rec in (loadgen or {}).items():
        (run_dir / schema.LOADGEN_DIR).mkdir(exist_ok=True)
        (run_dir / schema.LOADGEN_DIR / f"{mode}-p0.json").write_text(json.dumps(rec))
    if queue is not None:
        (run_dir / schema.QUEUE_DIR).mkdir(exist_ok=True)
        queue.to_csv(run_dir / schema.QUEUE_DIR / "offload.csv", index=False)
    run = {"schema_version": schema.RUN_SCHEMA_VERSION, "run_id": run_dir.name, "created_ts": T0, "status": status,
           "meta": {"git_commit": "test", "host": "test", "cpu_count": 2}, "load": {"model": model, "warmup_s": warmup_s},
           "modes": meta, "faults": [], "notes": []}  # fmt: skip
    (run_dir / schema.RUN_FILE).write_text(json.dumps(run))
    return run_dir


def copy_golden(dest: Path) -> Path:
    """A private copy of tests/fixtures/golden_run to damage in a test."""
    shutil.copytree(GOLDEN, dest)
    return dest

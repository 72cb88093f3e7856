"""What each injected fault did: API errors while it lasted, queue recovery time, orphaned jobs and re-runs.

Definitions (printed in the reports):
- fault window: from the fault's start to its end (a kill is an instant) plus `settle_s`; a request belongs to
  it when its intended start falls inside, or up to `settle_s` before it (it was in flight when it hit).
- recovery: the backlog (ready + deferred + in progress) is back to normal when it is at or below the largest
  backlog of the `baseline_s` before the fault; recovery_s runs from the fault's start to the first queue
  sample after the fault's end that is back to normal (None: not within the sampled time).
- orphaned jobs: attempts running at the fault's start, or begun while it lasted, that never ended or ended
  "cancelled"; re-run delay is from the fault's start to the next attempt of the same job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

SETTLE_S = 1.0
BASELINE_S = 10.0


def _window(fault: Mapping[str, Any]) -> tuple[float, float] | None:
    ts, end = fault.get("ts"), fault.get("end_ts")
    if not isinstance(ts, int | float):
        return None
    return float(ts), float(end) if isinstance(end, int | float) else float(ts)


def api_effect(samples: pd.DataFrame, start: float, end: float) -> dict[str, Any]:
    """Requests and errors whose intended start fell in [start - settle, end + settle]."""
    ts = samples["intended_ts"].to_numpy(dtype=float)
    inside = (ts >= start - SETTLE_S) & (ts <= end + SETTLE_S)
    ok = samples["ok"].to_numpy()[inside] == 1
    status = samples["status"].to_numpy()[inside]
    latency = samples["latency_ms"].to_numpy(dtype=float)[inside]
    codes, counts = np.unique(status[~ok], return_counts=True)
    return {
        "requests": int(inside.sum()),
        "errors": int((~ok).sum()),
        "error_statuses": {str(int(c)): int(n) for c, n in zip(codes, counts, strict=True)},
        "max_error_latency_ms": float(latency[~ok].max()) if (~ok).any() else None,
    }


def recovery_s(queue: pd.DataFrame | None, start: float, end: float) -> float | None:
    """Seconds from the fault's start until the backlog is back at or below its pre-fault maximum."""
    if queue is None or queue.empty:
        return None
    ts = queue["ts"].to_numpy(dtype=float)
    backlog = (queue["ready"] + queue["deferred"] + queue["in_progress"]).to_numpy(dtype=float)
    before = (ts >= start - BASELINE_S) & (ts < start)
    normal = float(backlog[before].max()) if before.any() else 0.0
    after = np.flatnonzero((ts > end) & (backlog <= normal))
    return float(ts[after[0]] - start) if after.size else None


def orphan_effect(attempts: pd.DataFrame | None, start: float, end: float | None = None) -> dict[str, Any]:
    """Attempts cut by the fault (running at its start or begun while it lasted) and when each job ran again."""
    if attempts is None or attempts.empty:
        return {"in_flight": 0, "orphaned": 0, "rerun": 0, "rerun_max_s": None, "rerun_p50_s": None}
    until = start if end is None else max(start, end)
    # an attempt with no end (its worker died, or Redis could not record the end) ran at most until its job's
    # next attempt began: without this bound it would count as cut by every later fault too
    attempts = attempts.reset_index(drop=True)  # the shift below aligns on the index: make it unique
    next_start = attempts.sort_values("start_ts").groupby("job_id")["start_ts"].shift(-1)
    ran_until = attempts["end_ts"].fillna(next_start)
    running = (attempts["start_ts"] <= until) & ~(ran_until < start)
    in_flight = attempts[running]
    cut = in_flight[in_flight["end_ts"].isna() | (in_flight["outcome"] == "cancelled")]
    # the next attempt of a cut job: the first of the same job that started after the cut one
    pairs = cut[["job_id", "start_ts"]].merge(
        attempts[["job_id", "start_ts"]], on="job_id", suffixes=("", "_next")
    )
    pairs = pairs[pairs["start_ts_next"] > pairs["start_ts"]]
    delays = pairs.groupby(["job_id", "start_ts"])["start_ts_next"].min().to_numpy(dtype=float) - start
    return {
        "in_flight": int(len(in_flight)),
        "orphaned": int(len(cut)),
        "rerun": int(delays.size),
        "rerun_max_s": float(delays.max()) if delays.size else None,
        "rerun_p50_s": float(np.median(delays)) if delays.size else None,
    }


# one mode's data a fault is judged against: its API samples, queue-depth samples and job attempts
ModeData = tuple[pd.DataFrame | None, pd.DataFrame | None, pd.DataFrame | None]


def fault_mode(fault: Mapping[str, Any], default: str = "offload") -> str:
    """The mode whose load a fault hit: its record's detail.mode (api faults fire once per mode with jobs),
    else the run's fault phase, default (records written before detail.mode existed: offload)."""
    detail = fault.get("detail")
    mode = detail.get("mode") if isinstance(detail, Mapping) else None
    return mode if isinstance(mode, str) and mode else default


def fault_effects(
    faults: Sequence[Mapping[str, Any]],
    samples: pd.DataFrame | None,
    queue: pd.DataFrame | None,
    attempts: pd.DataFrame | None,
    mode: str = "offload",
    others: Mapping[str, ModeData] | None = None,
) -> dict[str, Any]:
    """The reliability section: one entry per fault, plus API errors outside every fault window.

    samples, queue and attempts are the data of `mode`, the phase of a fault that names none; a fault whose
    detail.mode names another mode is judged against that mode's data in `others` (none there: no data)."""
    data: dict[str, ModeData] = {**(others or {}), mode: (samples, queue, attempts)}
    out = []
    outside: dict[str, tuple[pd.DataFrame, np.ndarray]] = {}  # per mode: samples, outside its fault windows
    for fault in faults:
        entry: dict[str, Any] = dict(fault)
        entry["mode"] = fault_mode(fault, mode)
        m_samples, m_queue, m_attempts = data.get(entry["mode"], (None, None, None))
        if m_samples is not None and entry["mode"] not in outside:
            outside[entry["mode"]] = (m_samples, np.ones(len(m_samples), dtype=bool))
        window = _window(fault)
        if window is not None:
            start, end = window
            if m_samples is not None:
                entry["api"] = api_effect(m_samples, start, end)
                ts = m_samples["intended_ts"].to_numpy(dtype=float)
                outside[entry["mode"]][1][:] &= ~((ts >= start - SETTLE_S) & (ts <= end + SETTLE_S))
            entry["recovery_s"] = recovery_s(m_queue, start, end)
            entry["jobs"] = orphan_effect(m_attempts, start, end)
        out.append(entry)
    elsewhere = None
    if outside:
        elsewhere = sum(int(((df["ok"].to_numpy() != 1) & mask).sum()) for df, mask in outside.values())
    return {"faults": out, "errors_outside_faults": elsewhere, "settle_s": SETTLE_S, "baseline_s": BASELINE_S}

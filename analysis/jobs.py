"""Offload reconciliation: every job the API accepted is accounted for, or counted as lost.

Definitions:
- accepted: distinct job ids in the mode's 2xx samples (the whole run, warm-up included: those jobs count too);
- completed / dead_lettered / pending: accepted jobs whose exported record is done / dead / pending or running;
- lost: accepted jobs in none of those (no record, state "missing" or unknown). These four add up to accepted;
- retried: accepted jobs with at least one attempt whose outcome was "retry"; redriven: redrives > 0;
- duplicates: executions no deliberate action explains, summed over accepted jobs:
  max(0, executions - 1 - retry attempts - redrives);
- queue wait: first attempt start - enqueued_ts; end-to-end: done_ts - enqueued_ts, over jobs enqueued after
  the warm-up;
- queue depth: ready + deferred (all unfinished jobs in arq:queue); backlog_end: the depth at the end of the
  load; drain: from the end of the load to the first queue sample with ready, deferred and in-progress all 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from analysis.stats import percentile_values

PENDING_STATES = ("pending", "running")
JOB_PERCENTILES = {"p50": 50.0, "p95": 95.0, "p99": 99.0}
LOST_IDS_SHOWN = 10


def _percentiles(values: np.ndarray) -> dict[str, float | None]:
    values = values[~np.isnan(values)]
    if values.size == 0:
        return dict.fromkeys(JOB_PERCENTILES)
    qs = percentile_values(values, list(JOB_PERCENTILES.values()))
    return {k: float(v) for k, v in zip(JOB_PERCENTILES, qs, strict=True)}


def accepted_job_ids(samples: pd.DataFrame) -> pd.Index:
    """Distinct job ids of the 2xx answers in samples."""
    status = samples["status"].to_numpy()
    ids = samples["job_id"].to_numpy()[(status >= 200) & (status < 300)]
    index: pd.Index = pd.Index(pd.unique(ids[pd.notna(ids) & (ids != "")]))
    return index


def reconcile(accepted: pd.Index, jobs: pd.DataFrame | None, measured_from_ts: float) -> dict[str, Any]:
    """Count accepted jobs by fate; queue-wait and end-to-end percentiles in ms."""
    table = jobs if jobs is not None else pd.DataFrame(columns=["job_id", "state"])
    dup_records = int(table["job_id"].duplicated().sum())
    table = table.drop_duplicates("job_id", keep="last").set_index("job_id")
    matched = table.reindex(accepted)
    state = matched["state"].astype(object).to_numpy()
    completed = int(np.count_nonzero(state == "done"))
    dead = int(np.count_nonzero(state == "dead"))
    pending = int(np.count_nonzero(np.isin(state, PENDING_STATES)))
    lost_mask = ~np.isin(state, ("done", "dead", *PENDING_STATES))
    found = matched.dropna(subset=["state"])
    if len(found):
        retries = found["retries"].to_numpy()
        redrives = found["redrives"].to_numpy()
        duplicates = int(np.maximum(found["executions"].to_numpy() - 1 - retries - redrives, 0).sum())
        recent = found[found["enqueued_ts"] >= measured_from_ts]
        wait_ms = (recent["first_start_ts"] - recent["enqueued_ts"]).to_numpy(dtype=float) * 1000
        e2e_ms = (recent["done_ts"] - recent["enqueued_ts"]).to_numpy(dtype=float) * 1000
    else:
        retries = redrives = np.zeros(0)
        duplicates = 0
        wait_ms = e2e_ms = np.zeros(0)
    return {
        "accepted": len(accepted),
        "completed": completed,
        "retried": int(np.count_nonzero(retries > 0)),
        "dead_lettered": dead,
        "redriven": int(np.count_nonzero(redrives > 0)),
        "pending": pending,
        "lost": int(np.count_nonzero(lost_mask)),
        "lost_ids_sample": [str(x) for x in accepted[lost_mask][:LOST_IDS_SHOWN]],
        "duplicates": duplicates,
        "unaccepted_records": int((~table.index.isin(accepted)).sum()),
        "duplicate_records": dup_records,
        "queue_wait_ms": _percentiles(wait_ms),
        "e2e_ms": _percentiles(e2e_ms),
        "e2e_samples": int(np.count_nonzero(~np.isnan(e2e_ms))),
    }


def e2e_ms(accepted: pd.Index, jobs: pd.DataFrame | None, measured_from_ts: float) -> np.ndarray:
    """End-to-end latencies (ms) of accepted jobs done after the warm-up, for plots."""
    if jobs is None or jobs.empty:
        return np.zeros(0)
    found = jobs[jobs["job_id"].isin(accepted) & (jobs["enqueued_ts"] >= measured_from_ts)]
    values: np.ndarray = (found["done_ts"] - found["enqueued_ts"]).to_numpy(dtype=float) * 1000
    done: np.ndarray = values[~np.isnan(values)]
    return done


def queue_stats(queue: pd.DataFrame | None, measured_from_ts: float, load_end_ts: float) -> dict[str, Any]:
    """Queue depth max, backlog at the end, drain time and the backlog's growth rate during the load."""
    out: dict[str, Any] = {
        "queue_depth_max": None,
        "backlog_end": None,
        "drain_s": None,
        "backlog_slope_per_s": None,
    }
    if queue is None or queue.empty:
        return out
    ts = queue["ts"].to_numpy()
    depth = (queue["ready"] + queue["deferred"]).to_numpy()
    busy = depth + queue["in_progress"].to_numpy()
    out["queue_depth_max"] = int(depth.max())
    # backlog when the load stopped (the last sample at or before its end): what the workers still owed
    at_end = np.flatnonzero(ts <= load_end_ts)
    out["backlog_end"] = int(depth[at_end[-1]] if at_end.size else depth[0])
    out["backlog_last"] = int(depth[-1])
    after = np.flatnonzero((ts >= load_end_ts) & (busy == 0))
    if after.size:
        out["drain_s"] = float(ts[after[0]] - load_end_ts)
    during = (ts >= measured_from_ts) & (ts <= load_end_ts)
    if np.count_nonzero(during) >= 3 and np.ptp(ts[during]) > 0:
        out["backlog_slope_per_s"] = float(np.polyfit(ts[during] - ts[during][0], depth[during], 1)[0])
    return out

"""Offload reconciliation: every job the API accepted is accounted for, or counted as lost.

Definitions:
- accepted: distinct job ids in the mode's 2xx samples (the whole run, warm-up included: those jobs count too);
- completed / dead_lettered / pending: accepted jobs whose exported record is done / dead / pending or running;
- unknown: accepted jobs whose fate the tracker could not learn (state "unknown": e.g. arq keeps no result,
  or the target has no tracker) — never counted as done, never as lost;
- lost: accepted jobs in none of those (no record, or state "missing"). These five add up to accepted;
- retried: accepted jobs with at least one attempt whose outcome was "retry"; redriven: redrives > 0;
- duplicates: executions no deliberate action explains, summed over accepted jobs:
  max(0, executions - 1 - retry attempts - redrives);
- queue wait: first attempt start - enqueued_ts; end-to-end: done_ts - enqueued_ts, over jobs enqueued after
  the warm-up;
- queue depth: ready + deferred (all unfinished jobs in arq:queue); backlog_end: the depth at the end of the
  load; drain: from the end of the load to the first queue sample with ready, deferred and in-progress all 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

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


def _strings(values: Any) -> pa.Array:
    """Arrow strings of a pandas column or Arrow array (no copy for Arrow-backed pandas strings)."""
    arr = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values, from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr if arr.type == pa.string() else pc.cast(arr, pa.string())


def _answered_ids(samples: pd.DataFrame) -> pa.Array:
    """The job ids of the 2xx answers in samples (repeats kept, empty ids dropped)."""
    status = samples["status"].to_numpy()
    ids = _strings(samples["job_id"]).filter(pa.array((status >= 200) & (status < 300)))
    return ids.filter(pc.fill_null(pc.not_equal(ids, ""), False))


def accepted_job_ids(samples: pd.DataFrame) -> pa.Array:
    """Distinct job ids of the 2xx answers in samples, in order of first appearance (Arrow strings)."""
    return pc.unique(_answered_ids(samples))


@dataclass
class Matched:
    """Each accepted job joined to its last record; ids joined through one shared dictionary (each string
    hashed once, then integer work), with no per-id Python object."""

    accepted: int  # distinct accepted ids
    pos: np.ndarray  # per accepted id, in order of first appearance: its last record's row, -1 when none
    lost_ids: list[str]  # the first LOST_IDS_SHOWN accepted ids without a known fate
    duplicate_records: int
    unaccepted_records: int


def _first_seen(codes: np.ndarray, size: int) -> np.ndarray:
    """Distinct codes in order of first appearance."""
    first = np.full(size, codes.size, dtype=np.int64)
    np.minimum.at(first, codes, np.arange(codes.size, dtype=np.int64))
    seen = np.flatnonzero(first < codes.size)
    return seen[np.argsort(first[seen], kind="stable")]


def _known(jobs: pd.DataFrame | None, pos: np.ndarray) -> np.ndarray:
    """Per accepted id: its record accounts for it (done, dead, pending, running, or a fate unknown)."""
    if jobs is None or not len(jobs):
        return np.zeros(pos.size, dtype=bool)
    state = jobs["state"].astype("category")
    fate = state.cat.categories.isin(["done", "dead", "unknown", *PENDING_STATES])
    codes = state.cat.codes.to_numpy()
    found = pos >= 0
    known = np.zeros(pos.size, dtype=bool)
    known[found] = fate[codes[pos[found]]] & (codes[pos[found]] >= 0)
    return known


def match(samples: pd.DataFrame, jobs: pd.DataFrame | None) -> Matched:
    """Join the accepted ids of samples to job records; a job with several records counts by its last one.
    A record without an id counts as one unaccepted id."""
    answered = _answered_ids(samples)
    ids = _strings(jobs["job_id"]) if jobs is not None and len(jobs) else pa.array([], pa.string())
    both = pa.concat_arrays([answered, ids]).dictionary_encode()
    codes = pc.fill_null(both.indices, -1).to_numpy(zero_copy_only=False)  # int32: half the memory
    size, n_answered, null_ids = len(both.dictionary), len(answered), ids.null_count
    dictionary = both.dictionary
    del both, answered, ids
    acc_codes = _first_seen(codes[:n_answered], size)
    rec_codes = codes[n_answered:]
    named = rec_codes >= 0
    last = np.full(size, -1, dtype=np.int64)
    np.maximum.at(last, rec_codes[named], np.flatnonzero(named))
    pos = last[acc_codes]
    lost = np.flatnonzero(~_known(jobs, pos))[:LOST_IDS_SHOWN]
    lost_ids = [str(x) for x in dictionary.take(pa.array(acc_codes[lost])).to_pylist()]
    distinct = int(np.count_nonzero(last >= 0)) + min(null_ids, 1)
    del dictionary, codes, last
    pa.default_memory_pool().release_unused()
    return Matched(
        accepted=int(acc_codes.size),
        pos=pos,
        lost_ids=lost_ids,
        duplicate_records=len(rec_codes) - distinct,
        unaccepted_records=distinct - int(np.count_nonzero(pos >= 0)),
    )


def reconcile(m: Matched, jobs: pd.DataFrame | None, measured_from_ts: float) -> dict[str, Any]:
    """Count accepted jobs by fate; queue-wait and end-to-end percentiles in ms."""
    found = m.pos[m.pos >= 0]
    if jobs is not None and found.size:
        state = jobs["state"].astype(object).to_numpy()[found]

        def col(name: str) -> np.ndarray:
            return np.asarray(jobs[name].to_numpy()[found])

        retries, redrives = col("retries"), col("redrives")
        duplicates = int(np.maximum(col("executions") - 1 - retries - redrives, 0).sum())
        enq = col("enqueued_ts").astype(float)
        recent = enq >= measured_from_ts
        wait_ms = (col("first_start_ts").astype(float) - enq)[recent] * 1000
    else:
        state = np.zeros(0, dtype=object)
        retries = redrives = np.zeros(0)
        duplicates = 0
        wait_ms = np.zeros(0)
    e2e = e2e_ms(m, jobs, measured_from_ts)
    unknown = int(np.count_nonzero(state == "unknown"))
    known = int(np.count_nonzero(np.isin(state, ("done", "dead", *PENDING_STATES)))) + unknown
    return {
        "accepted": m.accepted,
        "completed": int(np.count_nonzero(state == "done")),
        "retried": int(np.count_nonzero(retries > 0)),
        "dead_lettered": int(np.count_nonzero(state == "dead")),
        "redriven": int(np.count_nonzero(redrives > 0)),
        "pending": int(np.count_nonzero(np.isin(state, PENDING_STATES))),
        "unknown": unknown,
        "lost": m.accepted - known,
        "lost_ids_sample": m.lost_ids,
        "duplicates": duplicates,
        "unaccepted_records": m.unaccepted_records,
        "duplicate_records": m.duplicate_records,
        "queue_wait_ms": _percentiles(wait_ms),
        "e2e_ms": _percentiles(e2e),
        "e2e_samples": int(e2e.size),
    }


def e2e_ms(m: Matched, jobs: pd.DataFrame | None, measured_from_ts: float) -> np.ndarray:
    """End-to-end latencies (ms) of accepted jobs enqueued after the warm-up and done (for stats and plots)."""
    found = m.pos[m.pos >= 0]
    if jobs is None or not found.size:
        return np.zeros(0)
    enq = jobs["enqueued_ts"].to_numpy(dtype=float)[found]
    values = (jobs["done_ts"].to_numpy(dtype=float)[found] - enq)[enq >= measured_from_ts] * 1000
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

"""Do the workers keep up in a step? Judged from each job's accept and finish times (pure numpy, no files).

The count of jobs in the system (accepted, not finished) is the wrong thing to fit in a short step: it starts
at 0, rises to L = lambda W (Little) within a job duration W, and then wanders with the Poisson arrivals (a
burst of arrivals late in a 6 s step looks like growth although the workers keep up). What grows only when
the workers fall behind is the number of *overdue* jobs: accepted more than a normal job time ago and not yet
finished. A normal job time is taken from the step's first jobs (the workers were idle then). The overdue count
is fitted from one normal job time after the step starts (its start-up transient is left out), and counts as
growing beyond the run thresholds' floor and beyond what a stationary count wanders: a count of mean L that
decorrelates in ~W seconds gives a least-squares slope over T seconds a standard error of ~sqrt(12 L W / T^3).
Its slope under overload is the arrival rate minus what the workers complete, like the backlog's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

FIRST_JOBS: Final = 20  # the first jobs of a step (workers idle) give the normal job time
NORMAL_FACTOR: Final = 1.5  # overdue: in the system longer than 1.5 x the first jobs' 90th percentile
Z: Final = 2.5  # growth beyond 2.5 standard errors of a stationary count's slope
GRID_S: Final = 0.05
MIN_SPAN_JOBS: Final = 1.5  # the fitted span must hold at least this many normal job times


@dataclass(frozen=True)
class Backlog:
    """What a step's job records say about the workers keeping up."""

    growing: bool | None  # None: the step is too short for jobs this long, or too few jobs
    slope_per_s: float | None  # growth of the overdue jobs per second in the fitted span
    limit_per_s: float  # growth beyond this counts
    normal_s: float | None  # the normal job time (time in the system of the first jobs)
    span: tuple[float, float] | None  # the fitted span (epoch s)
    completion_rate: float | None  # finished per second late in the span (the workers' rate when growing)
    why: str = ""


def normal_job_s(enqueued: np.ndarray, finished: np.ndarray, end_ts: float) -> float | None:
    """Time in the system of the step's first jobs (an unfinished one counts until end_ts): 1.5 x their p90."""
    order = np.argsort(enqueued, kind="stable")[:FIRST_JOBS]
    if order.size == 0:
        return None
    stay = np.minimum(finished[order], end_ts) - enqueued[order]
    return float(NORMAL_FACTOR * np.percentile(stay, 90))


def overdue(enqueued: np.ndarray, finished: np.ndarray, grid: np.ndarray, normal_s: float) -> np.ndarray:
    """At each grid time t: jobs accepted before t - normal_s and not finished by t."""
    old = enqueued[None, :] <= (grid - normal_s)[:, None]
    counts: np.ndarray = np.count_nonzero(old & (finished[None, :] > grid[:, None]), axis=1)
    return counts.astype(float)


def _slope(t: np.ndarray, y: np.ndarray) -> float:
    return float(np.polyfit(t - t[0], y, 1)[0])


def _wander(level: float, corr_s: float, span_s: float) -> float:
    """Standard error of a slope fitted over span_s to a stationary count of mean `level` correlated over
    ~corr_s (Poisson: variance = mean; span_s / corr_s independent values)."""
    return float(np.sqrt(12.0 * max(level, 1.0) * corr_s / span_s**3))


def judge_backlog(
    enqueued: np.ndarray,
    finished: np.ndarray,
    load_start: float,
    w0: float,
    w1: float,
    floor_per_s: float,
    completed: np.ndarray | None = None,
) -> Backlog:
    """Whether the jobs accepted in a step fall behind: enqueued/finished epoch seconds per job (finished is
    inf for a job not finished, its DLQ time for a dead one), the load's start, the measured window [w0, w1]
    and the smallest growth that counts (the run thresholds'). completed: the done times only (inf for the
    others), what the completion rate (goodput) counts; default: finished."""
    enqueued = np.asarray(enqueued, dtype=float)
    finished = np.asarray(finished, dtype=float)
    done = finished if completed is None else np.asarray(completed, dtype=float)
    normal = normal_job_s(enqueued, finished, w1)
    if normal is None or enqueued.size < 3 or w1 - w0 <= 8 * GRID_S:
        return Backlog(None, None, floor_per_s, normal, None, None, "too few jobs")
    t0 = max(w0, load_start + normal)
    if w1 - t0 >= MIN_SPAN_JOBS * normal:
        grid = np.arange(t0, w1, GRID_S)
        count = overdue(enqueued, finished, grid, normal)
        # the count's own level: under overload that only widens the limit (a growth G gives ~G span / 2)
        limit = max(floor_per_s, Z * _wander(float(count.mean()), normal, w1 - t0))
        slope = _slope(grid, count)
        return Backlog(slope > limit, slope, limit, normal, (t0, w1), _done_rate(done, t0, w1))
    # jobs this long (or workers already swamped by the first ones): the jobs in the system, which start at
    # 0 and wander with the arrivals, can show a growth far beyond that wander, never that they keep up
    t0 = (w0 + w1) / 2 if w0 < load_start + normal else w0
    grid = np.arange(t0, w1, GRID_S)
    count = np.searchsorted(np.sort(enqueued), grid, "right") - np.searchsorted(
        np.sort(finished), grid, "right"
    )
    corr = min(normal, (w1 - t0) / 3)
    arrivals = np.count_nonzero((enqueued > t0) & (enqueued <= w1)) / (w1 - t0)
    limit = max(floor_per_s, Z * _wander(arrivals * corr, corr, w1 - t0))
    slope = _slope(grid, count.astype(float))
    if slope > limit:
        return Backlog(True, slope, limit, normal, (t0, w1), _done_rate(done, t0, w1))
    why = f"jobs take ~{normal:.1f} s: the step is too short to tell whether their backlog is bounded"
    return Backlog(None, slope, limit, normal, (t0, w1), _done_rate(done, t0, w1), why)


def _done_rate(finished: np.ndarray, t0: float, t1: float) -> float:
    """Jobs finished per second in the later half of (t0, t1]: workers that run many jobs at once share their
    CPU among more and more of them when they fall behind, and finish fewer at first than they can. Given the
    done times only, a goodput: a job retried (by a fault or by the worker itself) counts once, when done."""
    t0 = (t0 + t1) / 2
    return float(np.count_nonzero((finished > t0) & (finished <= t1))) / (t1 - t0)

"""How long a step lasts, when it is repeated, and how two runs of one step are judged together (pure).

A step lasts long enough for the percentile it judges to rest on enough tail samples (TAIL_SAMPLES beyond
it: 20 beyond p95 = 400 requests), bounded above by --step-duration: low rates get longer steps, high rates
shorter ones. While the search still climbs (no rate has failed yet) a step is bounded by 15 % of that:
those steps are far from every limit, and a marginal one is repeated anyway. A step is *marginal* when its percentile lands within
MARGIN of a threshold, or when the arrival rate the server got differs from the rate asked for by more than
Poisson noise explains: such a step is run again at the same rate and judged on both runs' samples pooled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np

from bench.capacity.model import Step
from bench.capacity.verdict import Limits

MARGIN: Final = 0.10  # a percentile within +-10 % of a threshold is marginal
POISSON_Z: Final = 3.0  # arrivals beyond 3 standard deviations of a Poisson count are not chance
# the shortest measured window: a p95 over 2 s flips on one 100 ms stall of a shared machine (5 % of the
# window), over 4 s it takes a 200 ms one; a step also judges growth over time
MIN_MEASURED_S: Final = 4.0
CLIMB_MEASURED_S: Final = 2.0  # while the search climbs (far from every limit, a marginal step is repeated)
TAIL_SAMPLES: Final = 20  # samples beyond the judged percentile (twice the analysis' trust threshold)
CLIMB_FRACTION: Final = 0.15  # exponential-phase steps last at most this share of --step-duration (3 s of 20)


def samples_needed(percentile: float, tail: int = TAIL_SAMPLES) -> int:
    """Samples that put `tail` of them beyond the percentile (95.0 -> 400)."""
    return math.ceil(round(tail / (1.0 - percentile / 100.0), 6))


def step_seconds(
    rate: float, needed: int, warmup_s: float, max_s: float, min_measured_s: float = MIN_MEASURED_S
) -> float:
    """Whole seconds of load (warm-up included) for `needed` samples at `rate` req/s, within
    [warmup + min_measured_s, max_s] (max_s wins when the two disagree)."""
    measured = max(min_measured_s, needed / rate)
    return float(min(max_s, math.ceil(warmup_s + measured)))


def marginal(step: Step, lim: Limits, window_s: float | None) -> str:
    """Why the step's verdict is marginal ('' when it is not): its percentile within MARGIN of a threshold, or
    its arrivals beyond Poisson noise from the rate asked for (a generator-limited step is retried anyway)."""
    if step.generator_limited or step.requests == 0:
        return ""
    value = step.percentile_ms
    if value is not None:
        for name, limit in (("fast", lim.fast_ms), ("ok", lim.slow_ms)):
            if abs(value / limit - 1.0) <= MARGIN:
                return f"{value:,.0f} ms is within {MARGIN:.0%} of the {name} limit ({limit:,.0f} ms)"
    got = step.arrival_rate
    if got is not None and window_s:
        expected = step.rate * window_s
        if abs(got * window_s - expected) > POISSON_Z * math.sqrt(expected):
            return f"got {got:,.1f} req/s of {step.rate:,.1f} asked (beyond Poisson noise)"
    return ""


@dataclass(frozen=True)
class Pooled:
    """Both runs' samples together: the chosen percentile (corrected and from the actual send), p50/95/99."""

    percentile_ms: float | None
    uncorrected_ms: float | None
    p50: float | None
    p95: float | None
    p99: float | None


def _wmean(a: float | None, wa: float, b: float | None, wb: float) -> float | None:
    """Weighted mean of two rates/fractions (None when either is unknown)."""
    if a is None or b is None or wa + wb <= 0:
        return a if b is None else (b if a is None else None)
    return (a * wa + b * wb) / (wa + wb)


def _cores(
    a: dict[str, float] | None, wa: float, b: dict[str, float] | None, wb: float
) -> dict[str, float] | None:
    """Two runs' cores per role, weighted like the rates (one run's alone when the other has none)."""
    if a is None or b is None:
        return a if b is None else b
    return {r: round(v, 3) for r in b if (v := _wmean(a.get(r), wa, b[r], wb)) is not None}


def _both(a: bool | None, b: bool | None) -> bool | None:
    """Two runs' backlog judgements: the same or unknown."""
    return a if a == b else None


def combine(first: Step, second: Step, pooled: Pooled | None) -> Step:
    """One step judged on two runs at the same rate (not yet judged: call verdict.judge on it).

    Latencies come from the pooled samples (percentiles are never averaged); rates and fractions are
    weighted by requests; the backlog counts as growing (or bounded) only when both runs say so."""
    w1, w2 = float(first.requests), float(second.requests)
    p = pooled or Pooled(None, None, None, None, None)
    worst_slope = [s for s in (first.inflight_slope_per_s, second.inflight_slope_per_s) if s is not None]
    backlog = _both(first.backlog_growing, second.backlog_growing)
    rates = [r for r in (first.job_rate, second.job_rate) if r is not None]
    return second.model_copy(
        update={
            "arrival_rate": _wmean(first.arrival_rate, w1, second.arrival_rate, w2),
            "achieved_rate": _wmean(first.achieved_rate, w1, second.achieved_rate, w2),
            "percentile_ms": p.percentile_ms,
            "uncorrected_ms": p.uncorrected_ms,
            "p50": p.p50,
            "p95": p.p95,
            "p99": p.p99,
            "error_rate": _wmean(first.error_rate, w1, second.error_rate, w2),
            "requests": first.requests + second.requests,
            "enough_samples": first.enough_samples or second.enough_samples,
            "sent_on_time": _wmean(first.sent_on_time, w1, second.sent_on_time, w2),
            "loadgen_cpu_percent": _wmean(first.loadgen_cpu_percent, w1, second.loadgen_cpu_percent, w2),
            # the server fell behind in the pair only when it did in both (a burst in one is chance)
            "inflight_slope_per_s": min(worst_slope) if len(worst_slope) == 2 else None,
            "backlog_growing": backlog,
            "backlog_note": "" if backlog is not None else "the two runs disagree on the backlog",
            "job_rate": float(np.mean(rates)) if rates else None,
            "jobs_accepted": (first.jobs_accepted or 0) + (second.jobs_accepted or 0)
            if first.jobs_accepted is not None or second.jobs_accepted is not None
            else None,
            "jobs_lost": (first.jobs_lost or 0) + (second.jobs_lost or 0)
            if first.jobs_lost is not None or second.jobs_lost is not None
            else None,
            "other_cores": max(o)
            if (o := [x for x in (first.other_cores, second.other_cores) if x is not None])
            else None,
            "cores": _cores(first.cores, w1, second.cores, w2),
            "settle": first.settle,
            "marginal": first.marginal,
            "runs": [r for r in (first.run_dir, second.run_dir) if r],
        }
    )

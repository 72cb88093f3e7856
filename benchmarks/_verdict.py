"""Goals as ratios over alternating pairs: a median with a 95 % bootstrap interval, and its verdict.

A figure is measured as one value per pair (A/B then B/A, adjacent in time, so a drift of the shared machine
hits both sides). Its verdict: *met* when the whole interval is on the goal's side, *missed* when the whole
interval is on the wrong side, *undecided* when it straddles the goal; a pair measured while the machine was
busy with other work (see _machine.py) makes it *machine busy* instead.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np
from scipy.stats import bootstrap

MET, MISSED, UNDECIDED, BUSY = "met", "missed", "undecided", "machine busy"
CONFIDENCE = 0.95


def median_interval(values: Sequence[float], seed: int = 0) -> tuple[float, float, float]:
    """(median, low, high): the median of the pairs and its 95 % percentile-bootstrap interval over pairs.

    Fewer than two finite pairs give no interval: (median, nan, nan).
    """
    data = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    if data.size == 0:
        return math.nan, math.nan, math.nan
    med = float(np.median(data))
    if data.size < 2:
        return med, math.nan, math.nan
    if np.all(data == data[0]):  # no spread: the interval is the value (bootstrap would warn)
        return med, med, med
    res = bootstrap(
        (data,),
        np.median,
        confidence_level=CONFIDENCE,
        method="percentile",
        n_resamples=4000,
        random_state=np.random.default_rng(seed),
    )
    return med, float(res.confidence_interval.low), float(res.confidence_interval.high)


def verdict(low: float, high: float, goal: float, op: str) -> str:
    """met / missed / undecided for a goal `>= goal` or `<= goal` given the interval [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return UNDECIDED
    if op == ">=":
        return MET if low >= goal else MISSED if high < goal else UNDECIDED
    if op == "<=":
        return MET if high <= goal else MISSED if low > goal else UNDECIDED
    raise ValueError(f"unknown goal operator {op!r}")


def run_pairs(
    one_pair: Callable[[int], None],
    decided: Callable[[], bool],
    min_pairs: int,
    max_pairs: int,
    budget_s: float,
    before_pair: Callable[[], None] | None = None,
) -> int:
    """Run pairs (one_pair(i)) until min_pairs are done and decided() says every goal has a verdict, or
    max_pairs are done, or budget_s has passed (an undecided figure then says so); the pairs run.

    before_pair: the machine check (waits a bounded time while other work uses the cores).
    """
    t0 = time.monotonic()
    n = 0
    while n < max_pairs:
        # the next pair must fit in the budget (a pair takes about as long as the mean so far)
        elapsed = time.monotonic() - t0
        if n >= min_pairs and (decided() or elapsed + elapsed / max(n, 1) > budget_s):
            break
        if before_pair is not None:
            before_pair()
        one_pair(n)
        n += 1
    return n

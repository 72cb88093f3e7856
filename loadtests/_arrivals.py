"""Open-model arrival schedules: pure functions of (rate, kind, seed), no gevent, testable anywhere."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Final

ARRIVALS: Final = ("constant", "poisson")


def stream_seed(seed: int, proc_index: int, stream_index: int) -> int:
    """A distinct, reproducible seed for each arrival stream of each load process."""
    return (seed * 1_000_003 + proc_index * 10_007 + stream_index) & 0x7FFF_FFFF


def arrival_times(rate_per_s: float, kind: str, seed: int, start_ts: float) -> Iterator[float]:
    """Endless scheduled start times (epoch s) of one stream at rate_per_s; constant or Poisson arrivals.

    Constant streams start at a seeded random phase so that many streams do not fire in lockstep.
    """
    if rate_per_s <= 0 or not math.isfinite(rate_per_s):
        raise ValueError(f"rate must be a positive number, got {rate_per_s}")
    if kind not in ARRIVALS:
        raise ValueError(f"arrival must be one of {', '.join(ARRIVALS)}, got {kind!r}")
    rng = random.Random(seed)
    interval_s = 1.0 / rate_per_s
    if kind == "constant":
        t = start_ts + rng.random() * interval_s
        n = 0
        while True:
            # from the start time, not by accumulation: no float drift over long runs
            yield t + n * interval_s
            n += 1
    t = start_ts
    while True:
        t += rng.expovariate(rate_per_s)
        yield t


def split(total: float, parts: int) -> float:
    """One part's share of total when split evenly over parts (at least one part)."""
    return total / max(1, parts)


def per_stream_cap(max_in_flight: int, streams: int) -> int:
    """Each stream's share of the in-flight cap, at least 1 (rounded up so the total is never below the cap)."""
    return max(1, math.ceil(max_in_flight / max(1, streams)))

"""The instrument's own error, shown beside the figures it affects: how late the load generator sent each
request (in the samples) and how busy its processes were (loadgen/<mode>-<proc>.json).

A request sent late in the open model is charged to the server in the corrected latency, and a saturated
load process delays everything it sends: both belong next to the latency they distort.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _cpu_samples(rec: dict[str, Any]) -> list[float]:
    return [
        float(s[1])
        for s in rec.get("cpu_percent") or []
        if isinstance(s, list | tuple) and len(s) == 2 and isinstance(s[1], int | float)
    ]


def _count(records: Sequence[dict[str, Any]], key: str) -> int | None:
    values = [r[key] for r in records if isinstance(r.get(key), int | float)]
    return int(sum(values)) if values else None


def load_generator(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One mode's load processes: count, CPU (% of one core: mean of the processes' means, the busiest
    process's mean, the highest sample) and the open model's scheduled/sent/late/dropped totals."""
    means = [float(np.mean(c)) for c in map(_cpu_samples, records) if c]
    peaks = [max(c) for c in map(_cpu_samples, records) if c]
    return {
        "processes": len(records),
        "cpu_percent_mean": float(np.mean(means)) if means else None,
        "cpu_percent_busiest": max(means) if means else None,
        "cpu_percent_max": max(peaks) if peaks else None,
        **{key: _count(records, key) for key in ("scheduled", "sent", "late", "dropped")},
    }

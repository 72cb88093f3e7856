"""What the workers' own logs in the run folder say: their event-loop lag and the faults they caused themselves.

A worker of the sample service (service/worker_state.py) logs one "loop lag" line per heartbeat: a histogram
of its ticker's lateness (upper bucket edges in ms), its claim limit's range and its lag bound. Lines of a
worker's Redis errors carry a `cause`: "worker loop late" when the round trip ran out of time because the
worker's own loop was busy, not because Redis was slow. Other targets write no such lines: then nothing is
reported (null), never 0.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

SELF_CAUSE = "worker loop late"
LOG_GLOB = "worker-*.log"


def _events(path: Path) -> list[dict[str, Any]]:
    out = []
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    for line in lines:
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and ("ticks" in obj or obj.get("cause") == SELF_CAUSE):
            out.append(obj)
    return out


def percentile_ms(counts: dict[str, int], q: float) -> float | None:
    """The q-quantile (0..1) of a {upper edge ms: count} histogram: its bucket's upper edge (conservative)."""
    pairs = sorted((math.inf if k == "inf" else float(k), int(n)) for k, n in counts.items() if int(n) > 0)
    total = sum(n for _, n in pairs)
    if not total:
        return None
    seen = 0
    for edge, n in pairs:
        seen += n
        if seen >= q * total:
            return edge
    return pairs[-1][0]  # pragma: no cover


def _in(ev: dict[str, Any], start_ts: float, end_ts: float) -> bool:
    ts = ev.get("ts")
    return isinstance(ts, int | float) and start_ts <= ts <= end_ts


def worker_lag(run_dir: Path, start_ts: float, end_ts: float) -> list[dict[str, Any]] | None:
    """Per worker log: its loop lag p50/p99/max (ms) and claim-limit range over [start_ts, end_ts]."""
    out = []
    for path in sorted((Path(run_dir) / "logs").glob(LOG_GLOB)):
        lines = [e for e in _events(path) if "ticks" in e and _in(e, start_ts, end_ts)]
        if not lines:
            continue
        counts: dict[str, int] = {}
        for e in lines:
            for edge, n in (e.get("counts") or {}).items():
                counts[edge] = counts.get(edge, 0) + int(n)
        p99 = percentile_ms(counts, 0.99)
        out.append({
            "worker": path.stem,
            "ticks": sum(counts.values()),
            "p50_ms": percentile_ms(counts, 0.5),
            "p99_ms": None if p99 is None or math.isinf(p99) else p99,
            "max_ms": max(float(e.get("max_ms") or 0.0) for e in lines),
            "bound_ms": lines[-1].get("bound_ms"),
            "adaptive": lines[-1].get("adaptive"),
            "limit_low": min(int(e.get("limit_low") or 0) for e in lines),
            "limit_high": max(int(e.get("limit_high") or 0) for e in lines),
        })  # fmt: skip
    return out or None


def self_inflicted(run_dir: Path, start_ts: float, end_ts: float) -> dict[str, int] | None:
    """Jobs whose retry or re-run the worker caused itself (cause "worker loop late"), apart from faults.

    retried: distinct jobs with such a retry (or whose start was not recorded); abandoned: distinct jobs whose
    end was left to the claim's expiry (they run again: duplicates); finish_retries: finishes that needed
    another try (the job stayed finished). None when no worker log carries lag lines (not our worker).
    """
    paths = sorted((Path(run_dir) / "logs").glob(LOG_GLOB))
    seen_worker = False
    found: dict[str, set[str]] = {"retried": set(), "abandoned": set(), "finish_retries": set()}
    for path in paths:
        for e in _events(path):
            if "ticks" in e:
                seen_worker = True
            elif _in(e, start_ts, end_ts) and e.get("job_id"):
                msg = str(e.get("msg", ""))
                kind = ("abandoned" if "claim's expiry" in msg
                        else "finish_retries" if msg.startswith("finish") else "retried")  # fmt: skip
                found[kind].add(str(e["job_id"]))
    if not seen_worker:
        return None
    return {k: len(v) for k, v in found.items()}

"""Side by side: what offloading buys the API, and what the user's work then waits for."""

from __future__ import annotations

from typing import Any

KEYS = ("p50", "p95", "p99")


def _ratio(num: float | None, den: float | None) -> float | None:
    return num / den if num is not None and den else None


def compare_modes(modes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """api_speedup = sync / offload API latency per percentile; work_wait_ms = sync latency vs offload e2e."""
    sync = (modes.get("sync") or {}).get("latency_ms") or {}
    offload = modes.get("offload") or {}
    off_lat = offload.get("latency_ms") or {}
    e2e = (offload.get("jobs") or {}).get("e2e_ms") or {}
    noop = (modes.get("noop") or {}).get("latency_ms") or {}
    return {
        "api_speedup": {k: _ratio(sync.get(k), off_lat.get(k)) for k in KEYS},
        "work_wait_ms": {
            "sync": {k: sync.get(k) for k in KEYS},
            "offload_e2e": {k: e2e.get(k) for k in KEYS},
        },
        "offload_over_noop_ms": {
            k: off_lat[k] - noop[k] if off_lat.get(k) is not None and noop.get(k) is not None else None
            for k in KEYS
        },
    }

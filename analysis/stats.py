"""Per-mode numbers from raw samples: exact percentiles, verdicts against the target, Apdex, windows.

Percentiles use numpy's ``method="inverted_cdf"`` (Hyndman & Fan type 1): the p-th percentile is the smallest
observed latency x such that at least p % of the samples are <= x. Every reported percentile is therefore a
latency that was actually observed, never an interpolation between two (a 1,049 ms tail reads 1,049, not 1000).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

from analysis.config import PERCENTILES, Thresholds

METHOD: Final = "inverted_cdf"
LATENCY_KEYS = (*PERCENTILES, "max", "mean")


@dataclass
class ModeSamples:
    """One mode's samples after the warm-up cut, as plain arrays (what stats and plots need)."""

    mode: str
    model: str  # closed | open
    basis: str  # corrected | actual: which latency is the headline
    ts: np.ndarray  # intended start, epoch s
    latency_ms: np.ndarray  # headline latency
    uncorrected_ms: np.ndarray | None  # open model: latency from the actual start
    ok: np.ndarray  # bool
    status: np.ndarray
    start_ts: float  # first second measured (after warm-up)
    end_ts: float  # end of the mode's load
    total_requests: int  # before the warm-up cut (for reconciling with Locust's count)
    lateness_ms: np.ndarray | None = None  # open model: start_ts - intended_ts, the generator's send error


def rank_index(n: int | np.ndarray, percent: float) -> np.ndarray:
    """0-based rank of the inverted-CDF percentile in n sorted values: numpy's ceil(n*q - 1), at least 0."""
    q = np.float64(percent) / 100  # computed as numpy does, so the rank is numpy's to the last bit
    return np.maximum(np.ceil(np.asarray(n) * q - 1), 0).astype(np.int64)


def percentile_values(values: np.ndarray, percents: list[float]) -> np.ndarray:
    """Exact inverted-CDF percentiles of values (equal to numpy's method="inverted_cdf", NaN-free input).

    One np.partition on the wanted ranks (plus the max) instead of numpy's generic path: O(n), one copy.
    """
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return np.full(len(percents), np.nan)
    ranks = [int(rank_index(values.size, p)) for p in percents]
    part = np.partition(values, sorted({*ranks, values.size - 1}))
    if np.isnan(part[-1]):  # NaN sorts last; numpy's percentile of data with a NaN is NaN
        return np.full(len(percents), np.nan)
    return np.asarray(part[ranks], dtype=float)


def latency_summary(values: np.ndarray) -> dict[str, float | None]:
    """p50/p90/p95/p99/p999/max/mean in ms of raw latencies; all None when there are none."""
    if values.size == 0:
        return dict.fromkeys(LATENCY_KEYS)
    qs = percentile_values(values, [*PERCENTILES.values(), 100.0])
    out: dict[str, float | None] = {k: float(v) for k, v in zip(PERCENTILES, qs, strict=False)}
    out["max"] = float(qs[-1])
    out["mean"] = float(values.mean())
    return out


def lateness_summary(lateness_ms: np.ndarray | None) -> dict[str, float | int | None] | None:
    """The generator's send lateness (start_ts - intended_ts, ms): p50/p99/max; None without a schedule."""
    if lateness_ms is None:
        return None
    if lateness_ms.size == 0:
        return {"p50": None, "p99": None, "max": None, "samples": 0}
    p50, p99, top = percentile_values(lateness_ms, [50.0, 99.0, 100.0])
    return {"p50": float(p50), "p99": float(p99), "max": float(top), "samples": int(lateness_ms.size)}


def verdict(ms: float | None, th: Thresholds) -> str | None:
    """fast (< fast_ms), ok (fast_ms..slow_ms inclusive) or slow (> slow_ms); None without a value."""
    if ms is None or np.isnan(ms):
        return None
    return "fast" if ms < th.fast_ms else ("slow" if ms > th.slow_ms else "ok")


def apdex(latency_ms: np.ndarray, ok: np.ndarray, th: Thresholds) -> float | None:
    """(satisfied + tolerating / 2) / all; failures count as frustrated whatever their latency."""
    if latency_ms.size == 0:
        return None
    satisfied = np.count_nonzero(ok & (latency_ms <= th.satisfied_ms))
    tolerating = np.count_nonzero(ok & (latency_ms > th.satisfied_ms) & (latency_ms <= th.tolerating_ms))
    return float((satisfied + tolerating / 2) / latency_ms.size)


def failure_kinds(status: np.ndarray, ok: np.ndarray) -> dict[str, int]:
    """Failures by kind: no_response (status 0), http_<code> (>= 400), semantic (a 2xx/3xx marked failed)."""
    failed = status[~ok]
    kinds = np.where(
        failed == 0, "no_response", np.where(failed >= 400, "http_" + failed.astype(str), "semantic")
    )
    names, counts = np.unique(kinds, return_counts=True)
    return {str(k): int(c) for k, c in zip(names, counts, strict=True)}


def windows(ts: np.ndarray, latency_ms: np.ndarray, start_ts: float, window_s: float) -> dict[str, Any]:
    """Per-window request counts and exact p50/p95/p99 (inverted CDF) over non-empty windows, vectorised."""
    out: dict[str, Any] = {
        "window_s": window_s,
        "start_ts": [],
        "requests": [],
        "p50": [],
        "p95": [],
        "p99": [],
    }
    if ts.size == 0:
        return out
    win = np.floor((ts - start_ts) / window_s).astype(np.int64)
    base = int(win.min())
    win -= base
    # group by window with a stable integer sort (radix when the numbers fit 16 bits, and the samples come
    # nearly in time order anyway), then each window's exact ranks by np.partition: no float sort at all
    small = np.int16 if win.max() < np.iinfo(np.int16).max else np.int64
    order = np.argsort(win.astype(small), kind="stable")
    win_sorted = win[order]
    first = np.r_[0, np.flatnonzero(win_sorted[1:] != win_sorted[:-1]) + 1]
    counts = np.diff(np.r_[first, win_sorted.size])
    lat_grouped = latency_ms[order]
    keys = ("p50", "p95", "p99")
    ranks = np.stack([rank_index(counts, PERCENTILES[k]) for k in keys])
    values = np.empty(ranks.shape)
    for i, (a, n) in enumerate(zip(first.tolist(), counts.tolist(), strict=True)):
        part = np.partition(lat_grouped[a : a + n], np.unique(ranks[:, i]))
        values[:, i] = part[ranks[:, i]]
    out["start_ts"] = (start_ts + (win_sorted[first] + base) * window_s).tolist()
    out["requests"] = counts.tolist()
    for key, row in zip(keys, values, strict=True):
        out[key] = row.tolist()
    return out


def mode_samples(df: pd.DataFrame, mode: str, run: dict[str, Any], warmup_s: float) -> ModeSamples:
    """Cut one mode's rows to the measured window and pick its headline latency (corrected when open)."""
    meta = (run.get("modes") or {}).get(mode) or {}
    models = df["model"].value_counts()
    model = (
        str(models.index[0]) if len(models) and models.iloc[0] else str((run.get("load") or {}).get("model"))
    )
    intended = df["intended_ts"].to_numpy()
    first_ts = (
        float(meta["start_ts"]) if meta.get("start_ts") is not None else float(np.nanmin(intended, initial=0))
    )
    # The load ends with the last request's intended start: run.json's end_ts (Locust's test_stop) also covers
    # the stop timeout that lets in-flight requests finish, which would dilute req/s and delay drain_s.
    end_ts = float(np.nanmax(intended, initial=first_ts)) if intended.size else first_ts
    cut = first_ts + warmup_s
    keep = intended >= cut
    basis = "corrected" if model == "open" else "actual"
    head_col = "latency_corrected_ms" if basis == "corrected" else "latency_ms"
    lateness = None
    if model == "open":
        lateness = (df["start_ts"].to_numpy()[keep] - intended[keep]) * 1000.0
        lateness = lateness[~np.isnan(lateness)]
    return ModeSamples(
        mode=mode,
        model=model,
        basis=basis,
        ts=intended[keep],
        latency_ms=df[head_col].to_numpy()[keep],
        uncorrected_ms=df["latency_ms"].to_numpy()[keep] if basis == "corrected" else None,
        ok=df["ok"].to_numpy()[keep] == 1,
        status=df["status"].to_numpy()[keep],
        start_ts=cut,
        end_ts=end_ts,
        total_requests=len(df),
        lateness_ms=lateness,
    )


def mode_stats(ms: ModeSamples, th: Thresholds, percentile: str) -> dict[str, Any]:
    """The summary.json numbers of one mode (everything but jobs)."""
    n = int(ms.latency_ms.size)
    failures = int(np.count_nonzero(~ms.ok))
    duration_s = max(ms.end_ts - ms.start_ts, 0.0)
    latency = latency_summary(ms.latency_ms)
    verdicts = {k: verdict(latency[k], th) for k in PERCENTILES}
    return {
        "requests": n,
        "failures": failures,
        "failures_by_kind": failure_kinds(ms.status, ms.ok),
        "error_rate": failures / n if n else None,
        "rps": n / duration_s if duration_s > 0 else None,
        "duration_s": duration_s,
        "model": ms.model,
        "latency_ms": latency,
        "latency_uncorrected_ms": latency_summary(ms.uncorrected_ms)
        if ms.uncorrected_ms is not None
        else None,
        "latency_basis": ms.basis,
        "send_lateness_ms": lateness_summary(ms.lateness_ms),
        "enough_samples": {k: n >= th.min_samples(k) for k in PERCENTILES},
        "min_samples": {k: th.min_samples(k) for k in PERCENTILES},
        "target": {
            "percentile": percentile,
            "verdict": verdicts[percentile],
            "verdicts": verdicts,
            "apdex": apdex(ms.latency_ms, ms.ok, th),
            "fast_ms": th.fast_ms,
            "slow_ms": th.slow_ms,
            "satisfied_ms": th.satisfied_ms,
            "tolerating_ms": th.tolerating_ms,
        },
        "windows": windows(ms.ts, ms.latency_ms, ms.start_ts, th.window_s),
    }

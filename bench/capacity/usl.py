"""Universal Scalability Law: X(N) = lambda N / (1 + sigma (N-1) + kappa N (N-1)), fitted by least squares.

sigma is contention (the serial share: queueing on a shared resource), kappa coherency (the cost of keeping
workers consistent, which makes throughput fall past a peak at N* = sqrt((1 - sigma) / kappa)). The fit turns
measured job rates per worker count into "at R jobs/s you need N workers".
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Final

import numpy as np

from bench.capacity.model import USL, Need

MAX_WORKERS: Final = 1024  # how far "you need N workers" looks


def usl_rate(n: np.ndarray | float, lam: float, sigma: float, kappa: float) -> np.ndarray | float:
    """X(N) for the given parameters."""
    return lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))


def fit(points: Sequence[tuple[int, float]]) -> USL:
    """Fit lambda, sigma, kappa to (workers, job rate) points; fewer than 3 points fit fewer parameters.

    Three or more distinct worker counts: all three; two: lambda and sigma (kappa = 0, Amdahl's law); one:
    lambda only (linear scaling assumed). Rates that are not positive are left out.
    """
    pts = sorted((int(n), float(x)) for n, x in points if n >= 1 and x > 0 and math.isfinite(x))
    if not pts:
        return USL(note="no worker count completed any job: nothing to fit")
    n = np.array([p[0] for p in pts], dtype=float)
    x = np.array([p[1] for p in pts], dtype=float)
    distinct = len(set(n.tolist()))
    lam0 = float(np.max(x / n))
    if distinct == 1:
        return USL.model_validate(
            {"lambda": float(np.mean(x / n)), "sigma": 0.0, "kappa": 0.0, "points": len(pts), "fitted": ["lambda"],
             "note": "one worker count measured: linear scaling assumed (measure more counts to fit sigma, kappa)"}
        )  # fmt: skip
    # scipy costs ~0.4 s to import: only a fit pays it, not every `offload-bench` call (the CLI imports this)
    from scipy.optimize import OptimizeWarning

    with warnings.catch_warnings():
        # as many points as parameters fit exactly and leave no covariance to estimate: not a problem here
        warnings.simplefilter("ignore", OptimizeWarning)
        lam, sigma, kappa, fitted, note = _curve_fit(n, x, distinct, lam0)
    result = USL.model_validate(
        {"lambda": float(lam), "sigma": float(sigma), "kappa": float(kappa), "points": len(pts),
         "fitted": fitted, "note": note}
    )  # fmt: skip
    peak_n, peak_x = peak(result)
    result.peak_workers, result.peak_rate = peak_n, peak_x
    return result


def _curve_fit(
    n: np.ndarray, x: np.ndarray, distinct: int, lam0: float
) -> tuple[float, float, float, list[str], str]:
    from scipy.optimize import curve_fit

    if distinct == 2:

        def amdahl(nn: np.ndarray, lam: float, sigma: float) -> np.ndarray:
            return np.asarray(usl_rate(nn, lam, sigma, 0.0))

        (lam, sigma), _ = curve_fit(amdahl, n, x, p0=(lam0, 0.1), bounds=([0, 0], [np.inf, 1]))
        kappa, fitted = 0.0, ["lambda", "sigma"]
        note = "two worker counts measured: kappa (coherency) assumed 0; measure 3+ counts to fit it"
    else:

        def full(nn: np.ndarray, lam: float, sigma: float, kappa: float) -> np.ndarray:
            return np.asarray(usl_rate(nn, lam, sigma, kappa))

        (lam, sigma, kappa), _ = curve_fit(
            full, n, x, p0=(lam0, 0.05, 0.001), bounds=([0, 0, 0], [np.inf, 1, 1]), max_nfev=10_000
        )
        fitted, note = ["lambda", "sigma", "kappa"], ""
    return float(lam), float(sigma), float(kappa), fitted, note


def peak(u: USL) -> tuple[float | None, float | None]:
    """(N*, X(N*)): where throughput peaks, or (None, None) when it never does (kappa = 0)."""
    if u.lambda_ is None or u.sigma is None or not u.kappa or u.kappa <= 0:
        return None, None
    n_star = math.sqrt(max(1.0 - u.sigma, 0.0) / u.kappa)
    n_star = max(n_star, 1.0)
    return n_star, float(usl_rate(n_star, u.lambda_, u.sigma, u.kappa))


def workers_needed(u: USL, rate: float) -> int | None:
    """The fewest workers whose fitted job rate reaches `rate`; None when no count up to the peak does."""
    if u.lambda_ is None or u.sigma is None or u.kappa is None or rate <= 0:
        return None
    limit = MAX_WORKERS
    if u.peak_workers is not None:
        limit = min(limit, math.ceil(u.peak_workers))
    for workers in range(1, limit + 1):
        if usl_rate(workers, u.lambda_, u.sigma, u.kappa) >= rate:
            return workers
    return None


def with_needs(u: USL, rates: Sequence[float]) -> USL:
    """u with needs filled for each rate (rounded, deduplicated, ascending)."""
    wanted = sorted({round(r, 1) for r in rates if r > 0})
    return u.model_copy(update={"needs": [Need(rate=r, workers=workers_needed(u, r)) for r in wanted]})

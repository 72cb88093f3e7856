"""USL least-squares fit: recovers sigma and kappa from noisy synthetic points; sizing from the fit."""

from __future__ import annotations

import numpy as np
import pytest

from bench.capacity.usl import fit, peak, usl_rate, with_needs, workers_needed


def test_fit_recovers_sigma_and_kappa_within_ten_percent():
    lam, sigma, kappa = 30.0, 0.05, 0.002
    n = np.array([1, 2, 4, 8, 16, 24, 32, 48, 64], dtype=float)
    rng = np.random.default_rng(7)
    x = usl_rate(n, lam, sigma, kappa) * (1 + rng.normal(0, 0.01, n.size))  # 1 % measurement noise
    u = fit(list(zip(n.astype(int).tolist(), x.tolist(), strict=True)))
    assert u.fitted == ["lambda", "sigma", "kappa"]
    assert u.sigma == pytest.approx(sigma, rel=0.10)
    assert u.kappa == pytest.approx(kappa, rel=0.10)
    assert u.lambda_ == pytest.approx(lam, rel=0.05)
    assert u.peak_workers == pytest.approx(np.sqrt((1 - sigma) / kappa), rel=0.10)


def test_two_points_fit_sigma_only_and_say_so():
    u = fit([(1, 30.0), (2, 50.0)])
    assert u.kappa == 0.0 and u.fitted == ["lambda", "sigma"]
    assert u.sigma == pytest.approx(0.2, abs=0.01)  # 2 * 30 / (1 + sigma) = 50
    assert "kappa" in u.note


def test_workers_needed_is_the_fewest_that_reach_the_rate():
    u = fit([(1, 30.0), (2, 57.0), (4, 100.0), (8, 150.0)])
    for rate in (25.0, 90.0, 140.0):
        n = workers_needed(u, rate)
        assert n is not None
        assert usl_rate(n, u.lambda_, u.sigma, u.kappa) >= rate
        assert n == 1 or usl_rate(n - 1, u.lambda_, u.sigma, u.kappa) < rate


def test_a_rate_beyond_the_peak_needs_no_worker_count():
    u = fit([(1, 30.0), (2, 40.0), (3, 38.0), (4, 33.0)])
    n_star, x_star = peak(u)
    assert n_star is not None and x_star is not None
    assert workers_needed(u, x_star * 1.5) is None
    assert with_needs(u, [x_star * 1.5]).needs[0].workers is None


def test_nothing_measured_fits_nothing():
    assert fit([(1, 0.0)]).lambda_ is None

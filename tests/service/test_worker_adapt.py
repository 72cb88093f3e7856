"""The claim limit's rules (service/worker_adapt.py), step by step on made-up lags: no worker, no clock."""

from __future__ import annotations

import pytest

from service.worker_adapt import CLOCK_S, CONTROL_S, HOLD_S, SETTLE_S, ClaimLimit

BOUND = 0.1


def _at(limit: int) -> ClaimLimit:
    claims = ClaimLimit(max_jobs=200, bound_s=BOUND)
    claims.limit = claims.low = claims.high = limit
    return claims


def _grows(claims: ClaimLimit, lag: float, running: int, now: float) -> bool:
    """update() after a job claimed since the last increase finished (what lets the limit grow)."""
    claims.finished(claims.epoch)
    return claims.update(lag, running=running, held_back=True, now=now)


def test_off_is_max_jobs_whatever_the_lag() -> None:
    claims = ClaimLimit(max_jobs=30, bound_s=BOUND, enabled=False)
    assert claims.limit == 30 and not claims.due(1e9)


def test_starts_at_a_quarter_and_doubles_while_far_under_the_bound() -> None:
    claims = ClaimLimit(max_jobs=200, bound_s=BOUND)
    assert claims.limit == 50
    assert _grows(claims, 0.001, running=50, now=1.0)
    assert claims.limit == 100
    claims.finished(claims.epoch)
    assert not claims.update(0.001, running=50, held_back=False, now=2.0), "nothing waits: no need to grow"


def test_an_increase_waits_for_a_job_since_the_last_one_to_finish_or_run_clock_s() -> None:
    claims = ClaimLimit(max_jobs=400, bound_s=BOUND)
    assert not claims.update(0.0, running=0, held_back=True, now=0.5), "no job yet: nothing shown"
    first = claims.claimed(1.0)  # the first jobs' tag
    assert not claims.update(0.0, running=100, held_back=True, now=1.1), "their CPU has not shown yet"
    claims.finished(first)
    assert claims.update(0.0, running=100, held_back=True, now=1.2) and claims.limit == 200
    claims.finished(first)  # a job claimed before that increase: says nothing of the new jobs
    claims.claimed(1.25)
    assert not claims.update(0.0, running=200, held_back=True, now=1.3)
    assert claims.update(0.0, running=200, held_back=True, now=1.25 + CLOCK_S) and claims.limit == 400


@pytest.mark.parametrize(
    ("lag", "deepest"),
    [(1.2 * BOUND, 0.8), (1.9 * BOUND, 0.8), (2.5 * BOUND, 0.5), (10 * BOUND, 0.5)],
)
def test_a_cut_is_proportional_a_fifth_at_most_near_the_bound_a_half_beyond(
    lag: float, deepest: float
) -> None:
    claims = _at(100)
    claims.update(lag, running=100, held_back=True, now=10.0)
    proportional = int(100 * 0.9 * BOUND / lag)
    assert claims.limit == max(int(100 * deepest), proportional)
    assert claims.decreases == 1


def test_a_cut_starts_from_the_jobs_running_and_waits_hold_s_for_the_next() -> None:
    claims = _at(100)
    claims.update(3 * BOUND, running=40, held_back=False, now=10.0)
    assert claims.limit == 20  # half of the 40 running, not of the limit
    claims.update(3 * BOUND, running=20, held_back=False, now=10.0 + HOLD_S / 2)
    assert claims.limit == 20, "the jobs already running finish only over time: hold"
    claims.update(3 * BOUND, running=20, held_back=False, now=10.0 + HOLD_S)
    assert claims.limit == 10


def test_after_a_cut_growth_is_additive_near_the_bound_and_holds_just_under_it() -> None:
    claims = _at(40)
    claims.update(3 * BOUND, running=40, held_back=True, now=10.0)  # first cut: 20
    now = 10.0 + SETTLE_S
    claims.update(0.5 * BOUND, running=20, held_back=True, now=now)  # no job finished: only slow start waits
    assert claims.limit == 21, "+1 under AIM x bound"
    _grows(claims, 0.95 * BOUND, running=21, now=now + SETTLE_S)
    assert claims.limit == 21, "between AIM x bound and the bound: hold"
    _grows(claims, 0.01 * BOUND, running=21, now=now + 2 * SETTLE_S)
    assert claims.limit == 26, "far under it: a quarter"
    _grows(claims, 0.01 * BOUND, running=26, now=now + 2 * SETTLE_S + CONTROL_S)
    assert claims.limit == 26, "at most one increase per SETTLE_S once cut"


def test_never_below_one_or_above_max_jobs() -> None:
    claims = _at(1)
    claims.update(100 * BOUND, running=1, held_back=True, now=10.0)
    assert claims.limit == 1
    claims = _at(150)
    _grows(claims, 0.0, running=150, now=10.0)
    assert claims.limit == 200
    assert claims.take_range() == (150, 200)

"""The backlog judgement (bench/capacity/backlog.py) on job times from a simulated queue: C slots of S s behind
FIFO (capacity C/S jobs/s), Poisson arrivals. Workers that keep up through a start-up transient and a burst of
arrivals are not judged behind; workers that are truly overloaded are, and their completion rate is the
capacity."""

from __future__ import annotations

import heapq

import numpy as np
import pytest

from bench.capacity.backlog import judge_backlog

DRAIN_S = 2.0  # like a capacity step: jobs unfinished 2 s after the load are exported unfinished


def poisson(rate: float, t0: float, t1: float, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.uniform(t0, t1, rng.poisson(rate * (t1 - t0))))


def fifo(accepted: np.ndarray, slots: int, service_s: float, end_s: float, seed: int) -> np.ndarray:
    """Finish times of jobs served in order by `slots` workers of log-normal service times (mean service_s);
    inf for a job not finished DRAIN_S after the load's end."""
    rng = np.random.default_rng(seed + 1000)
    service = rng.lognormal(np.log(service_s) - 0.02, 0.2, accepted.size)
    free = [0.0] * slots
    done = np.empty(accepted.size)
    for i, (t, s) in enumerate(zip(accepted, service, strict=True)):
        done[i] = max(t, heapq.heappop(free)) + s
        heapq.heappush(free, done[i])
    done[done > end_s + DRAIN_S] = np.inf
    return done


def in_system_slope(accepted: np.ndarray, done: np.ndarray, w0: float, w1: float) -> float:
    """What the old judgement fitted: the slope of the jobs in the system over the window."""
    grid = np.arange(w0, w1, 0.05)
    count = np.searchsorted(accepted, grid, "right") - np.searchsorted(np.sort(done), grid, "right")
    return float(np.polyfit(grid, count, 1)[0])


SEEDS = range(10)


def test_workers_that_keep_up_through_a_start_up_and_a_burst_are_not_behind():
    # 30 slots of 1.2 s (25 jobs/s) get 8 jobs/s, then 18 jobs/s for the second half of a 6 s step; the
    # window starts at the load's start: the jobs in the system ramp up from 0, then jump with the burst
    verdicts = []
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        accepted = np.concatenate([poisson(8, 0, 3, rng), poisson(18, 3, 6, rng)])
        done = fifo(accepted, 30, 1.2, 6.0, seed)
        assert in_system_slope(accepted, done, 0.0, 6.0) > 1.0  # the old judgement: "grew" (> 1/s)
        b = judge_backlog(accepted, done, 0.0, 0.0, 6.0, floor_per_s=1.0)
        verdicts.append(b.growing)
    assert True not in verdicts
    assert verdicts.count(False) >= 8, verdicts  # judged (not "too short") nearly every time


@pytest.mark.parametrize(("rate", "duration_s"), [(25.0, 6.0), (100.0, 6.0), (21.0, 12.0)])
def test_overloaded_workers_are_behind_and_complete_their_capacity(rate: float, duration_s: float):
    capacity = 10 / 0.6  # 10 slots of 0.6 s
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        accepted = poisson(rate, 0, duration_s, rng)
        done = fifo(accepted, 10, 0.6, duration_s, seed)
        b = judge_backlog(accepted, done, 0.0, 1.2, duration_s, floor_per_s=max(1.0, 0.02 * rate))
        assert b.growing is True, (seed, b)
        assert b.completion_rate is not None and abs(b.completion_rate / capacity - 1) < 0.15, (seed, b)


def test_a_steady_step_near_capacity_is_not_behind():
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        accepted = poisson(14.0, 0, 6.0, rng)  # 84 % of 16.7 jobs/s
        done = fifo(accepted, 10, 0.6, 6.0, seed)
        assert judge_backlog(accepted, done, 0.0, 1.2, 6.0, floor_per_s=1.0).growing is False, seed


def test_jobs_too_long_for_the_step_are_not_judged_keeping_up():
    rng = np.random.default_rng(1)
    accepted = poisson(
        2.0, 0, 6.0, rng
    )  # 5 s jobs, plenty of slots: they keep up, but a 6 s step cannot tell
    done = fifo(accepted, 50, 5.0, 6.0, 1)
    b = judge_backlog(accepted, done, 0.0, 1.2, 6.0, floor_per_s=1.0)
    assert b.growing is None and "too short" in b.why

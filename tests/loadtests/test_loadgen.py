"""The load process's own CPU samples: one per measurable interval, never a sample over a few microseconds."""

from __future__ import annotations

import time

from loadtests._loadgen import MIN_CPU_INTERVAL_S, LoadgenStats


def _burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_back_to_back_samples_keep_one_point_per_interval() -> None:
    stats = LoadgenStats(proc="0", model="open", late_threshold_ms=20.0)
    stats.sample_cpu()  # primes psutil: no point
    assert stats.cpu_percent == []
    time.sleep(MIN_CPU_INTERVAL_S + 0.05)
    _burn(0.05)
    stats.sample_cpu()
    stats.sample_cpu()  # the end-of-test call right after the last periodic one: skipped, not a 2nd point
    assert len(stats.cpu_percent) == 1
    ts, percent = stats.cpu_percent[0]
    assert 0.0 < percent <= 100.0  # one busy thread over >= 0.5 s: a real share of one core
    time.sleep(MIN_CPU_INTERVAL_S + 0.05)
    stats.sample_cpu()
    assert len(stats.cpu_percent) == 2
    assert stats.cpu_percent[1][0] - ts >= MIN_CPU_INTERVAL_S

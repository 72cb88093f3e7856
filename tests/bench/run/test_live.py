"""The progress display's rolling p95 (bench/run/live.py), computed without numpy (the CLI starts without it)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from bench.run.live import LiveSamples


@pytest.mark.parametrize("n", [1, 2, 19, 20, 21, 100, 1_001])
def test_the_live_p95_is_numpys_higher_percentile(n: int, tmp_path: Path) -> None:
    rng = random.Random(n)
    latencies = [rng.choice([rng.lognormvariate(1.0, 1.0), float(rng.randint(1, 5))]) for _ in range(n)]
    live = LiveSamples(tmp_path, "offload")
    live.recent.extend((float(i), lat) for i, lat in enumerate(latencies))
    assert live.p95_ms() == float(np.percentile(latencies, 95, method="higher"))


def test_no_samples_is_no_p95(tmp_path: Path) -> None:
    assert LiveSamples(tmp_path, "offload").p95_ms() is None

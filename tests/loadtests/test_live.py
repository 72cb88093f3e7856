"""The web UI's live numbers (loadtests/_live.py): the samples written so far, read as they grow, give exactly
what analysis computes from the whole file."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import loadtests._live as live
from analysis.config import load_thresholds
from analysis.stats import latency_summary, lateness_summary, verdict
from loadtests._capture import RawSample, RowFormatter, SampleFile


def raws(n: int, t0: float, rng: random.Random) -> list[RawSample]:
    """n open-model requests, every 7th failed, every other one with a job id."""
    out: list[RawSample] = []
    for i in range(n):
        intended = t0 + i * 0.01
        context = {"intended_ts": intended, "job_id": f"job{i}" if i % 2 else ""}
        error = "HTTP 500, expected 202" if i % 7 == 0 else ""
        status = 500 if error else 202
        out.append(
            (intended + rng.uniform(0, 0.03), rng.lognormvariate(3, 1), context, "POST x", error, status, 9)
        )
    return out


def test_live_numbers_follow_a_growing_sample_file_and_equal_analysis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "REFRESH_S", 0.0)  # every call reads (the UI polls every 2 s)
    monkeypatch.setattr(live, "READ_BYTES", 5_000)  # a late browser catches up over several refreshes
    monkeypatch.setattr(live, "PARSES", 4)
    rng = random.Random(3)
    sample_file = SampleFile(tmp_path / "samples" / "offload-0.csv")
    fmt = RowFormatter("offload", "open", "0")
    th = load_thresholds()
    numbers = live.LiveNumbers(tmp_path, "offload", "open", 20.0, th)
    assert numbers.numbers()["requests"] == 0
    text = fmt.format(raws(500, 1e9, rng))
    cut = len(text) - 40  # the last row half written: it waits for the next read
    sample_file.write(text[:cut], 0)
    seen = [numbers.numbers()["requests"] for _ in range(6)]
    assert seen[0] < 499 and seen[-1] == 499 and seen == sorted(seen), (
        seen
    )  # ~20 kB a read; the last row waits
    sample_file.write(text[cut:] + fmt.format(raws(300, 2e9, rng)), 0)
    for _ in range(6):
        got = numbers.numbers()
    sample_file.close()
    df = pd.read_csv(tmp_path / "samples" / "offload-0.csv", keep_default_na=False)
    want = latency_summary(df["latency_corrected_ms"].to_numpy())
    lateness = (df["start_ts"].to_numpy() - df["intended_ts"].to_numpy()) * 1000
    assert got["requests"] == len(df) == 800 and got["failures"] == int((df["ok"] == 0).sum())
    assert got["latency_ms"] == want and got["verdict"] == verdict(want[th.percentile], th)
    assert got["send_lateness_ms"] == lateness_summary(lateness)
    assert got["late"] == int(np.count_nonzero(lateness > 20.0))
    assert got["accepted"] == int(((df["job_id"] != "") & (df["status"] == 202)).sum())

"""Open model: latency from the intended start (corrected) is the headline; the uncorrected one is kept beside."""

from __future__ import annotations

import numpy as np

from analysis.report import build_report
from tests.analysis.runs import samples_frame, write_run


def test_corrected_latency_is_the_headline_and_uncorrected_is_kept(tmp_path):
    n = 2000
    actual = np.full(n, 20.0)
    corrected = actual.copy()
    corrected[1000:1100] += np.linspace(2000, 100, 100)  # a stall: requests waited to be sent
    frame = samples_frame("offload", actual, corrected_ms=corrected, model="open")
    summary = build_report(write_run(tmp_path / "run", {"offload": frame}, model="open"))
    m = summary["modes"]["offload"]
    assert m["latency_basis"] == "corrected"
    assert m["latency_ms"]["p99"] == np.percentile(corrected, 99, method="inverted_cdf") > 1000
    assert m["latency_ms"]["max"] == corrected.max()
    assert m["latency_uncorrected_ms"]["p99"] == 20.0
    assert m["target"]["verdicts"]["p99"] == "slow"  # judged on what users waited, not on what was sent
    assert m["windows"]["p99"] and max(m["windows"]["p99"]) > 1000


def test_closed_model_has_no_uncorrected_copy(tmp_path):
    frame = samples_frame("noop", np.linspace(1, 5, 300))
    m = build_report(write_run(tmp_path / "run", {"noop": frame}))["modes"]["noop"]
    assert m["latency_basis"] == "actual"
    assert m["latency_uncorrected_ms"] is None

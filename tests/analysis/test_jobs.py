"""Offload reconciliation on the golden run: every accepted job accounted for, lost ones counted, never hidden."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis.report import build_report
from tests.analysis.runs import GOLDEN
from tests.fixtures import make_golden


@pytest.fixture(scope="module")
def golden_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("golden-report")
    build_report(GOLDEN, out_dir=out)
    return out


@pytest.fixture(scope="module")
def golden_summary(golden_out):
    return json.loads((golden_out / "summary.json").read_text())


def test_reconciliation_counts_read_back_exactly(golden_summary):
    jobs = golden_summary["modes"]["offload"]["jobs"]
    assert {k: jobs[k] for k in make_golden.EXPECTED} == make_golden.EXPECTED
    # the fates partition what the API accepted
    assert jobs["completed"] + jobs["dead_lettered"] + jobs["pending"] + jobs["lost"] == jobs["accepted"]
    assert sorted(jobs["lost_ids_sample"]) == ["j12", "j13"]


def test_lost_jobs_are_shown_in_every_output(golden_summary, golden_out):
    out = golden_out
    assert any("2 accepted job(s) lost" in n for n in golden_summary["validity"]["info"])
    md = (out / "report.md").read_text()
    offload_row = next(line for line in md.splitlines() if line.startswith("| offload |"))
    assert offload_row.rstrip(" |").endswith("2")  # the headline's lost-jobs column
    assert "j12" in (out / "report.html").read_text()


def test_queue_wait_and_end_to_end_percentiles(golden_summary):
    records = [json.loads(line) for line in (GOLDEN / "jobs" / "offload.jsonl").read_text().splitlines()]
    accepted = {f"j{k:02d}" for k in range(1, 14)}
    done = [r for r in records if r["job_id"] in accepted and r["state"] == "done"]
    e2e = np.array([(r["done_ts"] - r["enqueued_ts"]) * 1000 for r in done])
    waits = np.array(
        [
            (r["attempts"][0]["start_ts"] - r["enqueued_ts"]) * 1000
            for r in records
            if r["job_id"] in accepted and r["attempts"]
        ]
    )
    jobs = golden_summary["modes"]["offload"]["jobs"]
    for key, q in (("p50", 50), ("p95", 95), ("p99", 99)):
        assert jobs["e2e_ms"][key] == pytest.approx(np.percentile(e2e, q, method="inverted_cdf"))
        assert jobs["queue_wait_ms"][key] == pytest.approx(np.percentile(waits, q, method="inverted_cdf"))


def test_comparison_puts_sync_latency_beside_offload_end_to_end(golden_summary):
    cmp_ = golden_summary["comparison"]
    modes = golden_summary["modes"]
    for key in ("p50", "p95", "p99"):
        assert cmp_["api_speedup"][key] == pytest.approx(
            modes["sync"]["latency_ms"][key] / modes["offload"]["latency_ms"][key]
        )
        assert cmp_["work_wait_ms"]["sync"][key] == modes["sync"]["latency_ms"][key]
        assert cmp_["work_wait_ms"]["offload_e2e"][key] == modes["offload"]["jobs"]["e2e_ms"][key]


def test_golden_fixture_is_what_the_script_writes(tmp_path):
    fresh = make_golden.write(tmp_path / "golden_run")
    committed = sorted(p.relative_to(GOLDEN) for p in GOLDEN.rglob("*") if p.is_file())
    assert committed == sorted(p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file())
    for rel in committed:
        assert (fresh / rel).read_bytes() == (GOLDEN / rel).read_bytes(), rel


def test_an_unknown_fate_is_neither_done_nor_lost(tmp_path):
    """A tracker that cannot learn a job's fate (arq keep_result=0, tracker none) says so: counted apart."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(GOLDEN, run)
    path = run / "jobs" / "offload.jsonl"
    lines = path.read_text().splitlines()
    first = json.loads(lines[0])
    assert first["job_id"] == "j01" and first["state"] == "done"
    first.update(state="unknown", done_ts=None)
    path.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    summary = build_report(run, out_dir=tmp_path / "out")
    jobs = summary["modes"]["offload"]["jobs"]
    expected = make_golden.EXPECTED
    assert jobs["unknown"] == 1
    assert jobs["completed"] == expected["completed"] - 1
    assert jobs["lost"] == expected["lost"] and "j01" not in jobs["lost_ids_sample"]
    fates = ("completed", "dead_lettered", "pending", "unknown", "lost")
    assert sum(jobs[k] for k in fates) == jobs["accepted"]
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| unknown | lost |" in md.split("### Offload jobs")[1]

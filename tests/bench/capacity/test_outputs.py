"""capacity.json (contract keys, committed JSON Schema), capacity.md, a self-contained capacity.html and plots,
from searches over model servers (no processes: the end-to-end tests run real Locust)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from bench.capacity.capacity_file import capacity_schema, read_json
from bench.capacity.model import CapacityResult, Step, WorkerPoint, rate_text
from bench.capacity.render import write_outputs
from bench.capacity.result import assemble, headline, mode_result
from bench.capacity.search import Search, run_search
from bench.capacity.validity import validity
from tests.bench.capacity.test_search import model_server

SCHEMA_FILE = Path(__file__).resolve().parents[3] / "bench" / "capacity" / "capacity.schema.json"


@pytest.fixture(scope="module")
def result() -> CapacityResult:
    res = CapacityResult(id="synthetic", created_ts=0.0, meta={"cpu_count": 2})
    sync = run_search(Search(5.0, 5000.0, factor=4), model_server(1, 31))
    offload = run_search(Search(5.0, 5000.0, factor=4, targets=("fast", "ok", "jobs")),
                         model_server(1900, 1950, gen_cap=3000, job_cap=30))  # fmt: skip
    res.modes = {"sync": mode_result("sync", "p95", sync, False),
                 "offload": mode_result("offload", "p95", offload, True)}  # fmt: skip
    workers = {1: WorkerPoint(max_job_rate=30.0, offered_rate=100.0, machine_cpu_percent=60.0),
               2: WorkerPoint(max_job_rate=50.0, offered_rate=200.0, machine_cpu_percent=97.0)}  # fmt: skip
    res = assemble(res, workers, cores=2, need_rates=[31.0, 100.0])
    res.headline = headline(res, 100.0, 1000.0)
    return res


def test_contract_keys_and_capacities(result: CapacityResult, tmp_path: Path):
    paths = write_outputs(result, tmp_path, 100.0, 1000.0)
    data = json.loads(paths["json"].read_text())
    sync, offload = data["modes"]["sync"], data["modes"]["offload"]
    assert sync["max_rate"]["fast"] is None  # not sustainable at 100 ms anywhere in the range
    assert 31 / 1.1 <= sync["max_rate"]["ok"] <= 31
    # the quoted figure: where the p95 crosses 1,000 ms between the bracket's steps (500 ms held, 5,000 did not)
    assert sync["max_rate"]["ok"] < sync["crossing"]["ok"] < sync["brackets"]["ok"]["high"]
    assert sync["crossing"]["fast"] is None and data["schema_version"] == 5
    assert 1900 / 1.1 <= offload["max_rate"]["fast"] <= 1900
    assert 30 / 1.1 <= offload["jobs"]["max_rate"] <= 31
    for step in sync["steps"] + offload["steps"]:
        assert {"rate", "achieved_rate", "p50", "p95", "p99", "error_rate", "generator_limited", "sustainable",
                "reason"} <= step.keys()  # fmt: skip
    assert data["workers"]["1"]["max_job_rate"] == 30.0
    assert data["usl"]["sigma"] == pytest.approx(0.2, abs=0.01) and data["usl"]["kappa"] == 0.0
    assert {"valid", "notes"} <= data["validity"].keys()
    assert read_json(paths["json"]) == result


def test_committed_schema_matches_the_model_and_validates_the_output(result: CapacityResult, tmp_path: Path):
    assert json.loads(SCHEMA_FILE.read_text()) == capacity_schema(), (
        "regenerate: python -m bench.capacity.capacity_file"
    )
    paths = write_outputs(result, tmp_path, 100.0, 1000.0)
    jsonschema.validate(json.loads(paths["json"].read_text()), json.loads(SCHEMA_FILE.read_text()))


def test_headline_says_where_each_mode_breaks_and_how_many_workers(result: CapacityResult):
    text = " ".join(result.headline)
    assert re.search(r"sync holds 1,000 ms \(p95\) up to \d+ req/s \(where its p95 crosses 1,000 ms between the "
                     r"steps at \d+, which held, and \d+\)", text)  # fmt: skip
    assert re.search(r"offload's API holds 100 ms \(p95\) up to 1,\d{3} req/s", text)
    assert re.search(r"one worker completes 30 jobs/s, 2 workers 50 \(USL sigma 0\.20, kappa 0\.000\): "
                     r"at 100 req/s you need 8 workers", text)  # fmt: skip
    assert "offload's job side: 1 worker completes 30 jobs/s" in text
    assert "are the limit" not in text  # 2 workers did 1.7 x one: more workers help, but the cores were busy
    assert "with 2 workers the machine's 2 cores were 97 % busy" in text and "cores, not the worker" in text


def test_when_more_workers_do_not_help_the_headline_names_the_cores(result: CapacityResult):
    res = result.model_copy(deep=True)
    workers = {1: WorkerPoint(max_job_rate=20.0, offered_rate=30.0, machine_cpu_percent=80.0),
               2: WorkerPoint(max_job_rate=21.0, offered_rate=60.0, machine_cpu_percent=98.0)}  # fmt: skip
    res = assemble(res, workers, cores=2, need_rates=[31.0, 100.0])
    text = " ".join(headline(res, 100.0, 1000.0))
    assert "no worker count keeps up with 31 req/s on this machine" in text
    assert (
        "the machine's cores, not the worker, are the limit: 2 workers complete 21 jobs/s against 20 for 1"
        in text
    )
    assert res.usl is not None and res.usl.sigma is not None and res.usl.sigma > 0.8


def test_cores_are_named_as_the_limit_when_the_machine_was_busy(result: CapacityResult):
    assert any("cores, not the worker" in n and n.startswith("2 worker") for n in result.validity.info)


def test_html_is_self_contained_and_plots_are_drawn(result: CapacityResult, tmp_path: Path):
    paths = write_outputs(result, tmp_path, 100.0, 1000.0)
    for name in ("latency", "throughput", "backlog", "usl"):
        assert paths[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = paths["html"].read_text()
    assert page.count('src="data:image/png;base64,') == 4
    assert not re.search(r'(src|href)="(?!data:)', page)
    assert "offload&#39;s API holds 100 ms" in page
    md = paths["md"].read_text()
    assert "![latency](plots/latency_vs_rate.png)" in md and "| sync |" in md
    ok = result.modes["sync"]
    assert f"| sync | - | {rate_text(ok.quoted('ok') or 0)} (held {rate_text(ok.max_rate.ok or 0)}) |" in md


def _kept_up(rate: float) -> WorkerPoint:
    step = Step(rate=rate, arrival_rate=rate, job_rate=rate * 0.98, backlog_growing=False)
    return WorkerPoint(max_job_rate=rate * 0.98, offered_rate=rate, machine_cpu_percent=40.0, step=step)


def test_a_worker_step_that_kept_up_below_the_apis_capacity_is_not_a_valid_figure(result: CapacityResult):
    # the default search's saturating rate came out at 17 req/s (a short step's 8 jobs/s x 2) and the worker
    # kept up: "17 jobs/s, a lower bound (the API capped the rate)" was untrue, and the search still "valid"
    below = assemble(result.model_copy(deep=True), {1: _kept_up(17.0)}, cores=2, need_rates=[])
    assert not below.validity.valid
    assert any("17 jobs/s is a lower bound: the time budget ran out" in n for n in below.validity.notes)
    api_ok = result.modes["offload"].brackets["ok"].low
    assert api_ok is not None
    capped = assemble(result.model_copy(deep=True), {1: _kept_up(api_ok)}, cores=2, need_rates=[])
    assert not any("lower bound" in n for n in capped.validity.notes)
    assert any("capped the rate" in n for n in capped.validity.info)


def test_short_steps_are_named_by_rate_and_whether_they_decide_a_bracket(result: CapacityResult):
    res = result.model_copy(deep=True)
    sync = res.modes["sync"]
    lowest = min(sync.steps, key=lambda s: s.rate)
    lowest.enough_samples = False
    text = " ".join(validity(res, cores=2).info)
    assert f"sync: 1 step(s) had too few samples for a trustworthy p95 ({rate_text(lowest.rate)} req/s: short " \
           "climbing steps below every bracket, which decide none)" in text  # fmt: skip
    ok_low = sync.brackets["ok"].low
    deciding = min(sync.steps, key=lambda s: abs(s.rate - (ok_low or 0)))
    deciding.enough_samples = False
    text = " ".join(validity(res, cores=2).info)
    assert "sync: 2 step(s) had too few samples" in text and "lengthen --step-duration" in text


def test_the_report_says_when_a_search_ran_its_workers_at_a_lowered_priority(
    result: CapacityResult, tmp_path: Path
):
    plain = write_outputs(result, tmp_path / "plain", 100.0, 1000.0)
    assert "nice" not in plain["md"].read_text()
    niced = result.model_copy(deep=True)
    for step in niced.modes["offload"].steps:
        step.workers_nice = 19
    paths = write_outputs(niced, tmp_path / "niced", 100.0, 1000.0)
    for kind in ("md", "html"):
        assert "lowest CPU priority (nice 19)" in paths[kind].read_text(), kind
    assert json.loads(paths["json"].read_text())["modes"]["offload"]["steps"][0]["workers_nice"] == 19

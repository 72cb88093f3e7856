"""The search as pure logic: brackets narrow to 10 % around known limits; a generator limit is never the server's."""

from __future__ import annotations

import math

import pytest

from bench.capacity.model import Step
from bench.capacity.search import Search, run_search
from bench.capacity.verdict import Limits, judge

LIM = Limits()


def model_server(
    fast_cap: float, ok_cap: float, gen_cap: float = math.inf, job_cap: float | None = None, got: float = 1.0
):
    """A step function of a server whose p95 crosses 100 ms at fast_cap and 1000 ms at ok_cap; the server
    gets `got` times the asked rate (Poisson arrivals of a short step stray from it)."""

    def measure(asked: float) -> Step:
        rate = asked * got
        p95 = 50.0 if rate <= fast_cap else (500.0 if rate <= ok_cap else 5000.0)
        sent = 1.0 if rate <= gen_cap else gen_cap / rate
        step = Step(
            rate=asked, arrival_rate=rate, achieved_rate=min(rate, ok_cap), p50=p95 / 2, p95=p95, p99=p95 * 1.2, percentile_ms=p95,
            uncorrected_ms=p95, error_rate=0.0, requests=1000, sent_on_time=sent,
            inflight_slope_per_s=0.0 if rate <= ok_cap else rate - ok_cap,
            backlog_slope_per_s=None if job_cap is None else max(0.0, rate - job_cap),
            backlog_growing=None if job_cap is None else rate > job_cap,
            job_rate=None if job_cap is None else min(rate, job_cap),
            jobs_lost=0 if job_cap is not None else None,
        )  # fmt: skip
        return judge(step, LIM, offload_like=job_cap is not None)

    return measure


@pytest.mark.parametrize(("fast_cap", "ok_cap"), [(30, 31), (12, 700), (5.5, 2900)])
def test_brackets_narrow_to_ten_percent_around_each_limit(fast_cap, ok_cap):
    search = run_search(Search(1.0, 10_000.0), model_server(fast_cap, ok_cap))
    b = search.brackets()
    for target, cap in (("fast", fast_cap), ("ok", ok_cap)):
        assert b[target].low is not None and b[target].high is not None
        assert b[target].low <= cap < b[target].high <= 1.10 * b[target].low
        assert b[target].limited_by == "server" and b[target].complete
    assert len(search.steps) <= 20


@pytest.mark.parametrize("got", [0.9, 1.08])
def test_steps_are_placed_at_the_rate_the_server_got(got):
    search = run_search(Search(10.0, 1000.0), model_server(40, 100, got=got))
    b = search.brackets()["ok"]
    assert b.low <= 100 < b.high <= 1.10 * b.low and b.complete


def test_offload_like_tracks_the_job_side_separately():
    search = run_search(
        Search(5.0, 5000.0, targets=("fast", "ok", "jobs")), model_server(1900, 2000, job_cap=30)
    )
    b = search.brackets()
    # a backlog growing by less than 1 job/s counts as bounded (the run's validity rule)
    assert b["jobs"].low <= 30 < b["jobs"].high <= 1.10 * b["jobs"].low
    assert b["fast"].low <= 1900 < b["fast"].high <= 1.10 * b["fast"].low


def test_not_sustainable_at_min_rate_is_null_and_stops_at_once():
    search = run_search(Search(50.0, 500.0), model_server(1, 10))
    b = search.brackets()
    assert b["ok"].low is None and b["ok"].limited_by == "none"
    assert [s.rate for s in search.steps] == [50.0]


def test_top_of_range_is_a_lower_bound():
    search = run_search(Search(10.0, 100.0), model_server(1000, 1000))
    b = search.brackets()
    assert b["ok"].low == 100.0 and b["ok"].high is None and b["ok"].limited_by == "range"


def test_generator_limit_is_never_the_servers_capacity():
    # the server holds up to 800/s but the generator can only send 100/s on time
    search = run_search(Search(10.0, 5000.0), model_server(800, 800, gen_cap=100))
    limited = [s for s in search.steps if s.generator_limited]
    assert limited, "a step above the generator's limit must be flagged"
    assert all(s.verdicts["ok"] == "unknown" and "add --processes" in s.reason for s in limited)
    b = search.brackets()
    assert b["ok"].limited_by == "generator" and b["ok"].low is not None and b["ok"].low <= 100
    assert b["ok"].complete and b["ok"].high <= 2 * b["ok"].low  # not narrowed further: that is the generator
    assert not any(s.verdicts["ok"] == "fail" for s in search.steps)


def test_a_generator_stall_is_looked_at_again_once():
    stalls = {120.0}  # the generator stalls once at 120/s (another process took the CPU), never again

    def measure(rate: float) -> Step:
        step = model_server(1000, 1000)(rate)
        if rate in stalls:
            stalls.discard(rate)
            step = judge(step.model_copy(update={"sent_on_time": 0.95}), LIM, offload_like=False)
        return step

    search = run_search(Search(30.0, 480.0), measure)
    assert [s.rate for s in search.steps][:4] == [30.0, 60.0, 120.0, 120.0]
    assert search.brackets()["ok"].limited_by == "range" and search.brackets()["ok"].low == 480.0


def test_generator_behind_but_server_slow_even_from_actual_send_is_the_servers_failure():
    step = Step(rate=100, p95=3000.0, percentile_ms=3000.0, uncorrected_ms=2500.0, error_rate=0.0,
                requests=500, sent_on_time=0.5)  # fmt: skip
    judged = judge(step, LIM, offload_like=False)
    assert judged.generator_limited and judged.verdicts == {"fast": "fail", "ok": "fail"}


def test_a_starved_generator_blames_nobody_for_its_latency():
    step = Step(rate=2560, p95=600.0, percentile_ms=600.0, uncorrected_ms=540.0, error_rate=0.0,
                requests=5000, sent_on_time=0.14, loadgen_cpu_percent=99.0)  # fmt: skip
    judged = judge(step, LIM, offload_like=False)
    assert judged.generator_limited and judged.verdicts == {"fast": "unknown", "ok": "unknown"}


def test_bad_ranges_are_refused():
    with pytest.raises(ValueError, match="min rate < max rate"):
        Search(100.0, 100.0)
    with pytest.raises(ValueError, match="min rate < max rate"):
        Search(0.0, 10.0)


def test_step_budget_stops_the_search_and_says_so():
    search = run_search(Search(1.0, 10_000.0, max_steps=5), model_server(3000, 3000))
    assert len(search.steps) == 5
    assert not search.brackets()["ok"].complete


def test_the_job_side_can_be_judged_at_every_step_without_being_searched():
    server = model_server(1900, 2000, job_cap=30)
    searched = run_search(Search(5.0, 5000.0, targets=("fast", "ok", "jobs")), server)
    judged = run_search(Search(5.0, 5000.0, targets=("fast", "ok", "jobs"), narrow=("fast", "ok")), server)
    assert len(judged.steps) < len(searched.steps)
    assert all(s.verdicts["jobs"] in ("pass", "fail") for s in judged.steps)
    b = judged.brackets()
    assert b["jobs"].low is not None and b["jobs"].low <= 30 < (b["jobs"].high or 0)
    assert b["fast"].low <= 1900 < b["fast"].high <= 1.10 * b["fast"].low and b["fast"].complete


def _inflight_step(rate: float, requests: int, p50: float, slope: float) -> Step:
    p95 = p50 * 1.3
    return Step(rate=rate, arrival_rate=rate, achieved_rate=rate, p50=p50, p95=p95, p99=p95, percentile_ms=p95,
                uncorrected_ms=p95, error_rate=0.0, requests=requests, sent_on_time=1.0,
                inflight_slope_per_s=slope)  # fmt: skip


def test_requests_in_flight_wandering_in_a_short_step_is_not_a_server_falling_behind():
    # the default search's first sync step (2 of 3 runs): 14 requests at 8.3 req/s, p50 520 ms (about 4 in
    # flight), a slope of 1.2/s over its ~1.7 s window: 2 requests more, well within a steady count's wander
    noise = judge(_inflight_step(8.29, 14, 520.0, 1.2), LIM, offload_like=False)
    assert noise.verdicts == {"fast": "fail", "ok": "pass"}, noise.reason
    # the same growth kept up over a 20 s step (24 requests more than about 4 in flight) is the server's
    behind = judge(_inflight_step(8.29, 166, 520.0, 1.2), LIM, offload_like=False)
    assert behind.verdicts["ok"] == "fail" and "requests in flight grew 1.2/s" in behind.reason
    # an overloaded step (sync at 44 req/s: grew 24.9/s over 2 s, p50 1.9 s) still fails
    overload = judge(_inflight_step(44.2, 88, 1903.0, 24.9), LIM, offload_like=False)
    assert overload.verdicts["ok"] == "fail" and "requests in flight grew" in overload.reason


def test_a_failure_a_higher_rate_contradicts_is_looked_at_again_once_and_judged_on_the_repeat():
    # the default search's noop (run 1 of 3): 2,153 req/s failed fast at 122 ms, 2,348 then passed; the
    # bracket stopped under the failure (2,003 req/s) while the next run quoted 2,642
    search = Search(10.0, 5000.0, factor=4.0)
    steps = ((10.0, 5.0), (40.0, 5.0), (1974.0, 60.0), (2153.0, 122.0), (2348.0, 80.0), (2560.0, 300.0))
    for rate, p95 in steps:
        search.record(judge(_inflight_step(rate, 5000, p95 / 1.3, 0.0), LIM, offload_like=False))
    assert search.brackets()["fast"].high == pytest.approx(2153.0 * search.got_per_asked())
    old = search.contradicted()
    assert old is not None and old.rate == 2153.0
    again = judge(_inflight_step(2153.0, 10000, 70.0, 0.0), LIM, offload_like=False).model_copy(
        update={"runs": ["/runs/a", "/runs/b"]}
    )
    search.replace(old, again)
    fast = search.brackets()["fast"]
    assert (fast.low, fast.high) == (2348.0, 2560.0) and search.contradicted() is None
    assert len(search.steps) == 6 and search.steps[3] is again
    # a failure that stays a failure on the repeat is not run a third time
    search.replace(again, judge(_inflight_step(2153.0, 10000, 120.0, 0.0), LIM, offload_like=False))
    assert search.contradicted() is None and search.brackets()["fast"].high == 2153.0


def _knee(rate: float, p95: float) -> Step:
    return judge(_inflight_step(rate, 1000, p95 / 1.3, 0.0), LIM, offload_like=False)


def test_the_quoted_figure_is_where_the_percentile_crosses_the_limit_not_where_a_step_flipped():
    # two default sync searches on one machine: the step at 20 req/s held 1,000 ms (p95) in one and not in the
    # other; their brackets' low ends, 20 and 17.2 req/s, were 1.16x apart, the crossings are not
    held = Search(10.0, 100.0, precision=1.2)
    for rate, p95 in ((10.0, 700.0), (20.0, 990.0), (23.0, 1300.0)):
        held.record(_knee(rate, p95))
    flipped = Search(10.0, 100.0, precision=1.2)
    for rate, p95 in ((10.0, 700.0), (17.2, 900.0), (20.0, 1010.0)):
        flipped.record(_knee(rate, p95))
    assert [s.brackets()["ok"].low for s in (held, flipped)] == [20.0, 17.2]
    a, b = held.crossing("ok", 1000.0), flipped.crossing("ok", 1000.0)
    assert a is not None and b is not None and max(a, b) / min(a, b) < 1.03
    assert 20.0 <= a < 23.0 and 17.2 <= b < 20.0
    # log-log: log(rate) goes as far from 17.2 to 20 as log(p95) goes from 900 ms to 1,000 of 1,010
    assert b == pytest.approx(17.2 * (20.0 / 17.2) ** (math.log(1000 / 900) / math.log(1010 / 900)))


def test_no_crossing_when_the_top_failed_on_something_else_than_its_latency():
    search = Search(10.0, 100.0, precision=1.2)
    search.record(_knee(10.0, 700.0))
    search.record(judge(_inflight_step(20.0, 1000, 600.0 / 1.3, 0.0).model_copy(update={"error_rate": 0.05}),
                        LIM, offload_like=False))  # fmt: skip
    assert search.brackets()["ok"].high is not None and search.crossing("ok", 1000.0) is None
    # nor when nothing failed yet (the range's top or the generator bounds it)
    assert Search(10.0, 100.0).crossing("ok", 1000.0) is None


def test_no_crossing_below_a_top_that_failed_a_looser_limit_within_its_latency():
    # noop, search 1 of a default --repeat 3: 1,522 req/s held (p95 36 ms), 1,660 failed both targets with p95
    # 344 ms because its requests in flight grew; "fast" was quoted at 1,633 (a crossing) and "ok" at 1,522
    limits = {"fast": 100.0, "ok": 1000.0}
    search = Search(10.0, 5000.0, precision=1.2)
    search.record(_knee(1522.0, 36.0))
    search.record(judge(_inflight_step(1660.0, 6874, 45.0, 0.0).model_copy(update={"p95": 344.0,
                        "percentile_ms": 344.0, "uncorrected_ms": 344.0, "inflight_slope_per_s": 109.5}),
                        LIM, offload_like=False))  # fmt: skip
    top = search.steps[-1]
    assert top.verdicts == {"fast": "fail", "ok": "fail"} and "in flight grew" in top.reason
    assert search.crossing("fast", 100.0) is not None  # judged on its own limit, 344 ms is a latency failure
    assert search.crossing("fast", 100.0, limits) is None and search.crossing("ok", 1000.0, limits) is None
    # a top that failed every target on its latency alone still gives the crossing
    latency_only = Search(10.0, 5000.0, precision=1.2)
    latency_only.record(_knee(1522.0, 36.0))
    latency_only.record(_knee(1660.0, 1344.0))
    assert latency_only.crossing("fast", 100.0, limits) is not None
    assert latency_only.crossing("ok", 1000.0, limits) is not None

"""Step length from samples, marginal verdicts repeated and judged on both runs, repeat aggregation (pure)."""

from __future__ import annotations

import pytest

from bench.capacity.model import Bracket, CapacityResult, MaxRate, ModeResult, Step, WorkerPoint
from bench.capacity.plan import Pooled, combine, marginal, samples_needed, step_seconds
from bench.capacity.repeat import aggregate, figures, repeat_lines
from bench.capacity.search import Search
from bench.capacity.validity import validity
from bench.capacity.verdict import Limits, judge

LIM = Limits()


def test_twenty_tail_samples_beyond_the_percentile():
    assert samples_needed(95.0) == 400 and samples_needed(99.0) == 2000 and samples_needed(90.0) == 200


def test_the_search_climbs_until_a_narrowed_target_fails():
    search = Search(10.0, 1000.0)
    assert search.climbing()
    search.record(judge(_step(400.0, rate=10.0), LIM, False))  # fast fails, ok holds: ok still climbs
    assert search.climbing()
    search.record(judge(_step(5000.0, rate=40.0), LIM, False))
    assert not search.climbing()


def test_a_step_lasts_long_enough_for_its_tail_samples_bounded_above():
    # 20 beyond p95 = 400 samples: 40 s at 10 req/s is cut to the bound, 100 req/s needs 4 s (+1 s warm-up)
    assert step_seconds(10.0, 400, 1.0, 12.0) == 12.0
    assert step_seconds(100.0, 400, 1.0, 12.0) == 5.0
    # high rates get short steps, never shorter than the warm-up and four measured seconds (two while climbing)
    assert step_seconds(5000.0, 400, 1.0, 12.0) == 5.0
    assert step_seconds(5000.0, 400, 1.0, 12.0, 2.0) == 3.0
    lengths = [step_seconds(r, 400, 1.0, 30.0) for r in (10, 20, 40, 80, 160)]
    assert lengths == sorted(lengths, reverse=True)
    # p99 needs 2,000 samples: longer at the same rate
    assert step_seconds(100.0, 2000, 1.0, 60.0) > step_seconds(100.0, 400, 1.0, 60.0)


def _step(p95: float, rate: float = 100.0, got: float | None = None, requests: int = 500) -> Step:
    return Step(
        rate=rate, arrival_rate=got if got is not None else rate, achieved_rate=rate, p50=p95 / 2, p95=p95,
        p99=p95 * 1.2, percentile_ms=p95, uncorrected_ms=p95, error_rate=0.0, requests=requests,
        sent_on_time=1.0, inflight_slope_per_s=0.0, run_dir=f"/runs/{p95}",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("p95", "got", "why"),
    [
        (95.0, None, "fast limit"),  # within 10 % below 100 ms
        (108.0, None, "fast limit"),  # within 10 % above
        (1050.0, None, "ok limit"),
        (40.0, None, ""),  # clearly fast
        (400.0, None, ""),  # clearly ok, clearly not fast
        (40.0, 100.0 * 1.02, ""),  # 2 % off in 5 s at 100 req/s: Poisson (sd ~4.5 %)
        (40.0, 100.0 * 0.80, "beyond Poisson"),  # 20 % short: not chance
    ],
)
def test_marginal_steps_are_the_ones_near_a_threshold_or_off_their_rate(p95, got, why):
    text = marginal(judge(_step(p95, got=got), LIM, False), LIM, 5.0)
    assert (why in text) if why else text == ""


def test_a_generator_limited_step_is_not_marginal_it_is_retried_by_the_search():
    step = judge(
        _step(99.0).model_copy(update={"sent_on_time": 0.5, "loadgen_cpu_percent": 95.0}), LIM, False
    )
    assert step.generator_limited and marginal(step, LIM, 5.0) == ""


def test_a_repeated_step_is_judged_on_both_runs_pooled_samples():
    first = judge(_step(95.0, requests=400), LIM, False)  # marginal: fast by 5 ms
    second = judge(_step(130.0, requests=600), LIM, False)  # fast missed
    assert first.fast and not second.fast
    both = judge(
        combine(first.model_copy(update={"marginal": "near"}), second, Pooled(112.0, 110.0, 50, 112.0, 140)),
        LIM,
        False,
    )
    assert not both.fast and both.sustainable  # the pooled p95 decides, not the first or the last run
    assert both.percentile_ms == 112.0 and both.requests == 1000
    assert both.runs == ["/runs/95.0", "/runs/130.0"] and both.marginal == "near"
    # rates are weighted by requests
    a, b = _step(50.0, got=90.0, requests=100), _step(50.0, got=110.0, requests=300)
    assert combine(a, b, None).arrival_rate == pytest.approx(105.0)


def test_a_backlog_judged_growing_in_one_run_only_is_not_known():
    grow = _step(20.0).model_copy(update={"backlog_growing": True, "jobs_lost": 0})
    keep = _step(20.0).model_copy(update={"backlog_growing": False, "jobs_lost": 0})
    assert combine(grow, keep, None).backlog_growing is None
    assert combine(grow, grow, None).backlog_growing is True
    assert combine(keep, keep, None).backlog_growing is False


def _result(fast: float | None, ok: float, jobs: float) -> CapacityResult:
    mode = ModeResult(percentile="p95", max_rate=MaxRate(fast=fast, ok=ok))
    return CapacityResult(
        id="x", created_ts=0.0, modes={"sync": mode},
        workers={"1": WorkerPoint(max_job_rate=jobs)}, wall_s=300.0,
    )  # fmt: skip


def test_repeat_reports_each_figures_median_and_spread():
    results = [_result(None, 20.0, 30.0), _result(None, 22.0, 33.0), _result(None, 18.0, 36.0)]
    assert figures(results[0]) == {"sync.fast": None, "sync.ok": 20.0, "workers.1": 30.0}
    crossed = _result(None, 20.0, 30.0)
    crossed.modes["sync"].crossing = MaxRate(ok=21.5)  # the quoted figure: the crossing where there is one
    assert figures(crossed)["sync.ok"] == 21.5
    rep = aggregate(results, ["a", "b", "c"])
    assert rep.n == 3 and rep.searches == ["a", "b", "c"] and rep.wall_s == [300.0] * 3
    ok = rep.figures["sync.ok"]
    assert ok.values == [20.0, 22.0, 18.0] and ok.median == 20.0 and ok.min == 18.0 and ok.max == 22.0
    assert ok.spread == pytest.approx(22.0 / 18.0)
    assert rep.figures["workers.1"].spread == pytest.approx(1.2)
    assert rep.figures["sync.fast"].median is None  # never sustainable: no figure, no spread
    lines = repeat_lines(rep)
    assert any("sync.ok 20 req/s (max/min 1.22)" in line for line in lines)
    assert "spread above 1.2: sync.ok" in lines[-1]


def _costed(steps: list[tuple[float, float, str]], sync_api: float = 0.1) -> CapacityResult:
    """noop steps (rate, API cores, ok verdict) at arrivals = rate, and one sync step at 10 req/s."""
    noop = ModeResult(percentile="p95", steps=[
        Step(rate=r, arrival_rate=r, requests=1000, cores={"api": api, "generator": 0.3}, verdicts={"ok": ok})
        for r, api, ok in steps
    ])  # fmt: skip
    sync = ModeResult(percentile="p95", steps=[
        Step(rate=10.0, arrival_rate=10.0, requests=200, cores={"api": sync_api}, verdicts={"ok": "pass"})
    ])  # fmt: skip
    return CapacityResult(id="x", created_ts=0.0, modes={"noop": noop, "sync": sync})


def test_repeat_reports_the_apis_cpu_per_request_at_the_highest_rate_every_search_held():
    # 1,280 held in two searches only; 640 in all three, the API at 600, 700 and 625 us per request there
    results = [
        _costed([(640.0, 0.384, "pass"), (1280.0, 0.768, "pass"), (2560.0, 0.99, "fail")]),
        _costed([(640.0, 0.448, "pass"), (1280.0, 0.95, "fail")]),
        _costed([(640.0, 0.40, "pass"), (1280.0, 0.80, "pass")]),
    ]
    rep = aggregate(results, ["a", "b", "c"])
    noop = rep.api_cpu["noop"]
    assert noop.rate == 640.0 and noop.us.values == pytest.approx([600.0, 700.0, 625.0])
    assert noop.us.spread == pytest.approx(700.0 / 600.0)
    assert "sync" not in rep.api_cpu  # its API under 0.2 cores: fixed costs, not a cost per request
    line = "  noop's API: 600-700 us of CPU per request at 640 req/s in every search (max/min 1.17;"
    assert any(x.startswith(line) for x in repeat_lines(rep)), repeat_lines(rep)
    busy_sync = aggregate([_costed([(640.0, 0.4, "pass")], sync_api=0.4)] * 2, ["a", "b"])
    assert busy_sync.api_cpu["sync"].us.values == pytest.approx([40_000.0, 40_000.0])
    from bench.capacity.render import markdown

    res = results[0].model_copy(update={"repeat": rep})
    assert "| noop API CPU us/request at 640 req/s | 625 | 600 | 700 | 1.17 | 600, 700, 625 |" in markdown(
        res, {}
    )


def test_a_figure_missing_in_one_search_is_counted_as_missing():
    rep = aggregate([_result(90.0, 20.0, 30.0), _result(None, 20.0, 30.0)], ["a", "b"])
    fast = rep.figures["sync.fast"]
    assert fast.values == [90.0, None] and fast.median == 90.0 and fast.spread == 1.0
    assert any("missing in 1" in line for line in repeat_lines(rep))


def test_a_bracket_the_budget_could_not_narrow_says_which_and_by_how_much():
    search = Search(10.0, 1000.0, precision=1.10)
    for rate, p95 in ((10.0, 400.0), (40.0, 5000.0)):
        search.record(judge(_step(p95, rate=rate), LIM, False))
    search.cut_by = "budget"
    b = search.brackets()["ok"]
    assert not b.complete and b.width == pytest.approx(4.0) and b.cut_by == "budget"
    res = CapacityResult(
        id="x", created_ts=0.0, config={"precision": 1.10},
        modes={"sync": ModeResult(percentile="p95", brackets={"ok": b, "fast": Bracket(limited_by="none")})},
    )  # fmt: skip
    v = validity(res, 2)
    assert not v.valid
    assert any("sync ok" in n and "4.00x wide" in n and "--budget" in n for n in v.notes), v.notes


def test_capacity_md_and_html_show_the_repeat_table():
    from bench.capacity.render import html, markdown

    res = _result(None, 20.0, 30.0)
    res.repeat = aggregate([res, _result(None, 22.0, 33.0)], ["a", "b"])
    md = markdown(res, {})
    assert "## Repeat: 2 searches" in md and "| sync.ok | 21 | 20 | 22 | 1.10 | 20, 22 |" in md
    assert "Repeat: 2 searches" in html(res, {}, 100.0, 1000.0)


@pytest.mark.parametrize(("sent", "again"), [(0.97, True), (0.53, False)])
def test_a_generator_limited_step_is_repeated_only_when_the_generator_nearly_kept_up(sent, again):
    search = Search(10.0, 1000.0)
    search.record(judge(_step(20.0, rate=10.0), LIM, False))
    limited = _step(20.0, rate=40.0).model_copy(update={"sent_on_time": sent, "loadgen_cpu_percent": 95.0})
    search.record(judge(limited, LIM, False))
    assert (
        search.next_rate() == 40.0
    ) is again  # a brief stall is looked at again; a generator at its limit is not


def test_one_steps_poisson_wander_neither_widens_a_bracket_nor_moves_it():
    # the sync search of an acceptance run (rates asked, got, p95): in rates got, [19.17, 22.06) is 1.15x wide
    # and the search went on (or was cut by the budget, "not narrowed"); the rates asked, 19.53 and 21.02, are
    # 1.076x apart: narrow, and the bracket is those rates scaled by the median got/asked of the search
    search = Search(10.0, 5000.0, factor=4.0)
    steps = ((10.0, 7.39, 600.0), (40.0, 44.17, 2000.0), (16.36, 15.49, 770.0), (27.63, 25.56, 1300.0),
             (21.02, 22.06, 1044.0), (19.53, 19.17, 830.0))  # fmt: skip
    for asked, got, p95 in steps:
        search.record(judge(_step(p95, rate=asked, got=got), LIM, False))
    assert search.next_rate() is None and search.cut_by == ""
    ratio = sorted(got / asked for asked, got, _ in steps)[len(steps) // 2]
    ok = search.brackets()["ok"]
    assert ok.complete and ok.low == pytest.approx(19.53 * ratio) and ok.high == pytest.approx(21.02 * ratio)
    assert ok.width == pytest.approx(21.02 / 19.53)

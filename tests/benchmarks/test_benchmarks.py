"""Each benchmark script runs end to end in its tiny --quick mode and reports figures (never asserts speed)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "benchmarks"
sys.path.insert(0, str(BENCH))

import _machine  # noqa: E402
import _stack  # noqa: E402
import _verdict  # noqa: E402
import _wrk  # noqa: E402
import run_all  # noqa: E402

WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:8000/noop/sources
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     9.10ms    3.27ms  52.12ms   88.11%
    Req/Sec     3.52k   225.41     3.90k    72.00%
  Latency Distribution
     50%    8.45ms
     75%    9.80ms
     90%   11.93ms
     99%    1.02s
  35043 requests in 10.01s, 6.12MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:   3501.17
Transfer/sec:    626.01KB
"""


def test_parse_wrk_reads_rate_percentiles_and_errors():
    parsed = _wrk.parse_wrk(WRK_OUTPUT)
    assert parsed["rps"] == pytest.approx(3501.17)
    assert parsed["requests"] == 35043
    assert parsed["p50"] == pytest.approx(8.45)
    assert parsed["p99"] == pytest.approx(1020.0)  # seconds are converted to ms
    assert parsed["non_2xx"] == 7
    assert parsed["socket_errors"] == 3


def test_final_table_shows_each_figure_its_interval_and_a_failed_benchmark():
    figures = [
        {"name": "ratio", "measured": 0.7, "goal": 0.8, "op": ">=", "unit": "", "met": False, "ratio": 0.875,
         "low": 0.65, "high": 0.75, "pairs": 4, "verdict": "missed"},
        {"name": "eff", "measured": 0.5, "goal": 0.0, "op": "info", "unit": "", "met": True, "ratio": math.nan},
    ]  # fmt: skip
    results = {"offload_path": (1, {"figures": figures}, 12.0), "worker": (2, None, 3.0)}
    table = run_all.table(results)
    rows = list(zip(*(col.cells for col in table.columns), strict=True))
    assert rows[0][:7] == (
        "offload_path",
        "ratio",
        ">= 0.8",
        "0.700",
        "[0.650, 0.750]",
        "4",
        "[red]MISSED[/]",
    )
    assert rows[1][1:3] == ("eff", "")
    assert rows[2][1] == "did not run (exit 2)"
    assert run_all.missed(results)
    figures[0]["verdict"] = "undecided"
    assert not run_all.missed(results)  # only a missed goal fails `make bench`


@pytest.mark.parametrize(
    ("low", "high", "op", "expected"),
    [
        (1.35, 1.6, ">=", "met"),  # wholly above a floor of 1.3
        (1.0, 1.25, ">=", "missed"),  # wholly below it
        (1.2, 1.4, ">=", "undecided"),  # straddles it
        (0.9, 1.04, "<=", "met"),  # wholly below a ceiling of 1.05 (written for the <= goals)
        (1.1, 1.3, "<=", "missed"),
        (1.0, 1.1, "<=", "undecided"),
    ],
)
def test_a_verdict_comes_from_where_the_interval_lies(low, high, op, expected):
    goal = 1.3 if op == ">=" else 1.05
    assert _verdict.verdict(low, high, goal, op) == expected


def test_a_figure_from_pairs_has_the_median_a_bootstrap_interval_and_its_verdict():
    above = _stack.Figure.from_pairs("no-op", [1.5, 1.45, 1.6, 1.55], 1.3, ">=")
    assert above.measured == pytest.approx(1.525)
    assert 1.45 <= above.low <= above.measured <= above.high <= 1.6
    assert above.verdict == "met" and above.met
    below = _stack.Figure.from_pairs("no-op", [1.1, 1.2, 1.15], 1.3, ">=")
    assert below.verdict == "missed" and not below.met
    straddle = _stack.Figure.from_pairs("no-op", [1.2, 1.4, 1.25, 1.35], 1.3, ">=")
    assert straddle.low < 1.3 < straddle.high
    assert straddle.verdict == "undecided" and straddle.met  # not a miss: `make bench` exits 0
    busy = _stack.Figure.from_pairs("no-op", [1.1, 1.2, 1.15], 1.3, ">=", busy=True)
    assert busy.verdict == "machine busy" and busy.met
    single = _stack.Figure.from_pairs("no-op", [1.5], 1.3, ">=")
    assert single.verdict == "undecided"  # one pair has no interval


def test_pairs_are_added_while_undecided_up_to_the_cap():
    done: list[int] = []
    n = _verdict.run_pairs(done.append, lambda: len(done) >= 5, min_pairs=3, max_pairs=8, budget_s=60)
    assert n == 5 and done == [0, 1, 2, 3, 4]
    done.clear()
    assert _verdict.run_pairs(done.append, lambda: False, min_pairs=3, max_pairs=6, budget_s=60) == 6


def test_the_machine_check_counts_other_processes_apart_from_ours():
    reading = _machine.read(window_s=0.2)
    assert reading.other_cores >= 0 and 0 <= reading.steal <= 1
    assert isinstance(reading.busy, bool) and "other processes" in reading.text()


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("offload_path", marks=pytest.mark.needs_tool("wrk")),  # wrk cross-checks Locust
        "worker",
        "capture",
        "generator",
        "analysis",
        "send_accuracy",
        "master_intake",
    ],
)
def test_benchmark_quick_mode_prints_its_figures(name, tmp_path):
    out = tmp_path / "figures.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH / f"bench_{name}.py"), "--quick", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    # 0 = goals met, 1 = a goal missed: tiny runs say nothing about speed, so both are fine here
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    assert out.exists(), proc.stderr[-2000:]  # a goal missed still writes its figures
    data = json.loads(out.read_text())
    assert data["bench"] == name and data["figures"]
    for fig in data["figures"]:
        assert math.isfinite(fig["measured"]), fig
        assert fig["name"] in proc.stdout
    assert "share the machine's cores" in proc.stdout

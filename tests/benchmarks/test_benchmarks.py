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


def test_final_table_shows_each_figure_and_a_failed_benchmark():
    figures = [
        {"name": "ratio", "measured": 0.7, "goal": 0.8, "op": ">=", "unit": "", "met": False, "ratio": 0.875},
        {
            "name": "eff",
            "measured": 0.5,
            "goal": 0.0,
            "op": "info",
            "unit": "",
            "met": True,
            "ratio": math.nan,
        },
    ]
    table = run_all.table({"offload_path": (1, {"figures": figures}, 12.0), "worker": (2, None, 3.0)})
    rows = list(zip(*(col.cells for col in table.columns), strict=True))
    assert rows[0][:6] == ("offload_path", "ratio", ">= 0.8", "0.70", "0.88", "[red]MISSED[/red]")
    assert rows[1][1:3] == ("eff", "")
    assert rows[2][1] == "did not run (exit 2)"


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("offload_path", marks=pytest.mark.needs_tool("wrk")),  # wrk cross-checks Locust
        "worker",
        "capture",
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

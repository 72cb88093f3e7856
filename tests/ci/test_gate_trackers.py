"""`offload-bench gate --benchmark-json/--bmf`: the formats github-action-benchmark and Bencher read, from
synthetic runs (tests/fixtures/gate): one entry per mode x figure, the median of the runs, their min and max."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bench.judge.gate_inputs import load_summaries
from bench.judge.gate_trackers import FIGURES, benchmark_json, bmf, figures
from tests.bench.judge.test_gate_cli import run_cli, write_runs

# Bencher's published schema of BMF (https://bencher.dev/docs/reference/bencher-metric-format/)
BMF_SCHEMA: dict[str, Any] = {
    "type": "object",
    "patternProperties": {
        ".+": {
            "type": "object",
            "patternProperties": {
                ".+": {
                    "type": "object",
                    "properties": {
                        "value": {"type": "number"},
                        "lower_value": {"type": "number"},
                        "upper_value": {"type": "number"},
                    },
                    "required": ["value"],
                }
            },
        }
    },
}
# github-action-benchmark's customSmallerIsBetter entry (its README: name, unit, value; optional range, extra)
BENCHMARK_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "unit": {"type": "string"},
            "value": {"type": "number"},
            "range": {"type": "string"},
            "extra": {"type": "string"},
        },
        "required": ["name", "unit", "value"],
        "additionalProperties": False,
    },
}
LATENCY = ("p50", "p90", "p95", "p99")


def per_run(runs: list[Path], mode: str, *path: str) -> list[float]:
    """A figure of each run's summary.json."""
    out = []
    for run in runs:
        node: Any = json.loads((run / "summary.json").read_text())["modes"][mode]
        for key in path:
            node = node[key]
        out.append(float(node))
    return out


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-run synthetic baseline at reports/baseline."""
    root = tmp_path_factory.mktemp("trackers")
    proc = run_cli("baseline", "update", *write_runs(root / "base", "b", [1, 2, 3]), cwd=root)
    assert proc.returncode == 0, proc.stderr
    return root


@pytest.mark.parametrize(("shift_ms", "exit_code"), [(0.0, 0), (50.0, 1)], ids=["pass", "regression"])
def test_gate_writes_both_formats_on_pass_and_on_regression(
    work: Path, shift_ms: float, exit_code: int
) -> None:
    cands = write_runs(work / f"cand-{shift_ms:g}", "c", [11, 12, 13], shift_ms={"offload": shift_ms})
    out = work / f"out-{shift_ms:g}"
    proc = run_cli(
        "gate", *cands, "--benchmark-json", out / "benchmark.json", "--bmf", out / "bmf.json", cwd=work
    )
    assert proc.returncode == exit_code, proc.stdout + proc.stderr
    assert f"wrote {out / 'benchmark.json'}" in proc.stdout and f"wrote {out / 'bmf.json'}" in proc.stdout

    entries = json.loads((out / "benchmark.json").read_text())
    jsonschema.validate(entries, BENCHMARK_SCHEMA)
    by_name = {e["name"]: e for e in entries}
    assert len(by_name) == len(entries)  # names are unique: one chart per entry
    modes = ("noop", "sync", "offload")
    expected = {f"{m} latency {p}" for m in modes for p in LATENCY} | {f"{m} error rate" for m in modes}
    assert set(by_name) == expected | {"offload job e2e p95"}  # only offload has a job side

    data = json.loads((out / "bmf.json").read_text())
    jsonschema.validate(data, BMF_SCHEMA)
    assert set(data) == set(modes)
    assert set(data["offload"]) == {f"latency-{p}-ms" for p in LATENCY} | {"error-rate-pct", "job-e2e-p95-ms"}

    for mode in modes:
        for p in LATENCY:
            runs = per_run(cands, mode, "latency_ms", p)
            entry, metric = by_name[f"{mode} latency {p}"], data[mode][f"latency-{p}-ms"]
            assert entry["unit"] == "ms"
            assert entry["value"] == pytest.approx(statistics.median(runs))
            assert entry["range"] == f"{min(runs):.4g} to {max(runs):.4g} (min to max of 3 runs)"
            assert metric == pytest.approx(
                {"value": statistics.median(runs), "lower_value": min(runs), "upper_value": max(runs)}
            )
    assert by_name["offload error rate"]["unit"] == "%" and data["offload"]["error-rate-pct"]["value"] == 0
    e2e = per_run(cands, "offload", "jobs", "e2e_ms", "p95")
    assert data["offload"]["job-e2e-p95-ms"]["value"] == pytest.approx(statistics.median(e2e))
    # the shifted candidate's offload figures move, the others do not: the files hold the candidates' figures
    offload_p95 = by_name["offload latency p95"]["value"]
    assert (offload_p95 > 50) == (shift_ms > 0)


def test_a_single_run_has_no_range_and_a_figure_missing_anywhere_is_left_out(tmp_path: Path) -> None:
    one = write_runs(tmp_path, "one", [5])
    entries = benchmark_json(figures(load_summaries(one)))
    assert all("range" not in e for e in entries)
    assert all(
        set(m) == {"value"} for bench in bmf(figures(load_summaries(one))).values() for m in bench.values()
    )
    assert len(entries) == 3 * (len(FIGURES) - 1) + 1

    # a second run without p99 (too few samples: null) and without the noop mode
    two = write_runs(tmp_path, "two", [6])
    summary = json.loads((two[0] / "summary.json").read_text())
    del summary["modes"]["noop"]
    for mode in summary["modes"].values():
        mode["latency_ms"]["p99"] = None
    (two[0] / "summary.json").write_text(json.dumps(summary))
    names = {e["name"] for e in benchmark_json(figures(load_summaries(one + two)))}
    assert not any(n.startswith("noop ") or n.endswith(" p99") for n in names)
    assert "offload latency p95" in names and "sync latency p50" in names

"""`offload-bench gate` and `baseline update` as a subprocess on synthetic run folders (tests/fixtures/gate)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from bench.judge.gate_eval import fmt
from tests.fixtures.gate.synth import make_run, write_run
from tests.scripts import console_script

CLI = console_script("offload-bench")
RELATIVE_ONLY = """
[rules.offload_p95_rel]
kind = "relative"
label = "offload p95"
metric = "modes.offload.latency_ms.p95"
max_increase_pct = 25
unit = "ms"
"""


def run_cli(
    *args: str | Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base_env = {k: v for k, v in os.environ.items() if k != "GITHUB_STEP_SUMMARY"}
    proc = subprocess.run(
        [CLI, *map(str, args)], cwd=cwd, env={**base_env, **(env or {})}, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def write_runs(root: Path, prefix: str, seeds: list[int], **kwargs: object) -> list[Path]:
    """Synthetic run folders root/<prefix>-<seed>."""
    return [write_run(root / f"{prefix}-{seed}", make_run(seed, **kwargs)[0]) for seed in seeds]  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a 3-run baseline made by `offload-bench baseline update` (the default reports/baseline)."""
    root = tmp_path_factory.mktemp("gate")
    runs = write_runs(root / "baseline-runs", "base", [1, 2, 3])
    proc = run_cli("baseline", "update", *runs, cwd=root)
    assert proc.returncode == 0, proc.stderr
    return root


def test_baseline_update_writes_summaries_and_metadata(work: Path) -> None:
    folder = work / "reports" / "baseline"
    assert sorted(p.name for p in folder.glob("*.summary.json")) == [
        f"synth-{i}.summary.json" for i in (1, 2, 3)
    ]
    meta = json.loads((folder / "baseline.json").read_text())
    assert meta["git_commit"] == f"{1:040x}" and len(meta["git_commits"]) == 3
    assert meta["load"]["users"] == 20 and meta["load"]["model"] == "open"
    assert meta["machine"] == {"host": "synth-host", "cpu_count": 2, "platform": "Linux", "python": "3.11"}
    assert [r["run_id"] for r in meta["runs"]] == ["synth-1", "synth-2", "synth-3"]
    assert meta["date"].startswith("20")


def test_baseline_update_replaces_the_old_baseline(tmp_path: Path) -> None:
    (tmp_path / "bl").mkdir()
    (tmp_path / "bl" / "old-1.summary.json").write_text("{}")  # an earlier baseline's files
    (tmp_path / "bl" / "README.md").write_text("docs")
    runs = write_runs(tmp_path, "b", [7])
    proc = run_cli("baseline", "update", *runs, "--baseline-dir", "bl", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "bl").iterdir()) == [
        "README.md",
        "baseline.json",
        "synth-7.summary.json",
    ]
    assert json.loads((tmp_path / "bl" / "baseline.json").read_text())["runs"][0]["run_id"] == "synth-7"


def test_same_distribution_passes(work: Path) -> None:
    cands = write_runs(work / "same", "c", [11, 12, 13])
    proc = run_cli("gate", *cands, cwd=work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "gate: PASS" in proc.stdout
    assert "Mann-Whitney U" in proc.stdout  # the method is stated


def test_50ms_shift_fails_and_reports_rule_and_figure_everywhere(work: Path) -> None:
    cands = write_runs(work / "slow", "s", [21, 22, 23], shift_ms={"offload": 50.0})
    summary_file = work / "step-summary.md"
    summary_file.write_text("earlier step\n")
    proc = run_cli(
        "gate", *cands, "--junit", "out/junit.xml", "--markdown", "out/gate.md",
        cwd=work, env={"GITHUB_STEP_SUMMARY": str(summary_file)},
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    cand_p95 = statistics.median(json.loads((c / "summary.json").read_text())["modes"]["offload"]["latency_ms"]["p95"]
                                 for c in cands)  # fmt: skip
    figure = f"offload p95 {fmt(cand_p95, 'ms')} vs baseline"
    assert figure in proc.stdout and "(rule offload_p95_rel;" in proc.stdout
    assert "gate: FAIL" in proc.stdout

    suites = ET.parse(work / "out" / "junit.xml").getroot()
    cases = {c.get("name"): c for c in suites.iter("testcase")}
    assert len(cases) == 8  # one per rule of the packaged bench/gates.toml
    failed = {name for name, case in cases.items() if case.find("failure") is not None}
    assert failed == {"offload_p95_rel", "offload_p50_rel", "offload_vs_noop_p95"}
    message = cases["offload_p95_rel"].find("failure").get("message") or ""  # type: ignore[union-attr]
    assert figure in message and "rule offload_p95_rel" in message
    assert suites.find("testsuite").get("failures") == "3"  # type: ignore[union-attr]

    step = summary_file.read_text()
    assert step.startswith("earlier step\n") and "## offload-bench gate: FAIL" in step and figure in step
    assert (work / "out" / "gate.md").read_text() in step


def test_absolute_rule_message_names_rule_and_figure(tmp_path: Path) -> None:
    (tmp_path / "abs.toml").write_text(
        '[rules.offload_p95_abs]\nkind = "absolute"\nlabel = "offload p95"\n'
        'metric = "modes.offload.latency_ms.p95"\nop = "<="\nvalue = 100\nunit = "ms"\n'
    )
    summary, _ = make_run(5)
    summary["modes"]["offload"]["latency_ms"]["p95"] = 143.2
    write_run(tmp_path / "run", summary)
    # No baseline exists and none is needed: absolute rules judge the candidate alone.
    proc = run_cli("gate", tmp_path / "run" / "summary.json", "--rules", "abs.toml", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "offload p95 143.2 ms > 100 ms (rule offload_p95_abs)" in proc.stdout


@pytest.mark.parametrize(
    ("kwargs", "expected_rc"),
    [
        (
            {"window_sigma": 0.8, "scale": {"offload": 1.3}},
            0,
        ),  # +40 % headline, windows overlap: within noise
        (
            {"stall_windows": 5},
            0,
        ),  # a tail spike in 5 of 60 windows per run: the headline jumps, windows do not
        ({"window_sigma": 0.8, "scale": {"offload": 3.0}}, 1),  # same spread, a shift far beyond it: reported
    ],
    ids=["large-spread", "few-stalled-windows", "beyond-the-spread"],
)
def test_relative_rule_reports_only_shifts_beyond_the_noise(
    tmp_path: Path, kwargs: dict[str, Any], expected_rc: int
) -> None:
    (tmp_path / "rel.toml").write_text(RELATIVE_ONLY)
    sigma = {"window_sigma": kwargs["window_sigma"]} if "window_sigma" in kwargs else {}
    (tmp_path / "bl").mkdir()
    for seed in (1, 2, 3):  # written directly: `baseline update` has its own tests
        (tmp_path / "bl" / f"b{seed}.summary.json").write_text(json.dumps(make_run(seed, **sigma)[0]))
    cands = write_runs(tmp_path, "cand", [11, 12, 13], **kwargs)
    proc = run_cli(
        "gate", *cands, "--baseline", "bl", "--rules", "rel.toml", "--markdown", "g.md", cwd=tmp_path
    )
    assert proc.returncode == expected_rc, proc.stdout + proc.stderr
    report = (tmp_path / "g.md").read_text()
    change = float(report.split(" ms (+")[1].split(" %")[0])
    assert change > 25  # the tolerance alone would have failed every case
    if expected_rc == 0:
        assert "within noise, not reported" in report
    else:
        assert "(rule offload_p95_rel;" in proc.stdout


def test_mismatched_load_parameters_refused_unless_forced(work: Path) -> None:
    summary, _ = make_run(31, load={"users": 40})
    summary["run"]["meta"]["host"] = "ci-runner"
    cands = [write_run(work / "other-load", summary)]
    proc = run_cli("gate", *cands, cwd=work)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: runs are not comparable")
    assert "load.users: synth-31=40 vs synth-1=20" in proc.stderr and "--force" in proc.stderr
    forced = run_cli("gate", *cands, "--force", cwd=work)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "warning: compared despite: load.users" in forced.stderr
    assert "different machines (ci-runner/2 CPUs, synth-host/2 CPUs)" in forced.stderr


def test_different_schema_version_refused(work: Path) -> None:
    summary, _ = make_run(41)
    summary["schema_version"] = 2
    write_run(work / "future", summary)
    proc = run_cli("gate", work / "future", cwd=work)
    assert proc.returncode == 2 and "schema_version 2" in proc.stderr and proc.stderr.count("\n") == 1


def test_bad_rules_file_is_a_one_line_usage_error(work: Path) -> None:
    (work / "bad.toml").write_text(
        '[rules.x]\nkind = "absolute"\nmetric = "modes.a.b"\nop = "=<"\nvalue = 1\n'
    )
    proc = run_cli("gate", work / "baseline-runs" / "base-1", "--rules", "bad.toml", cwd=work)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: bad rules file bad.toml: rules.x.absolute.op: Input should be")
    assert proc.stderr.count("\n") == 1


def test_missing_metric_is_a_usage_error(work: Path) -> None:
    (work / "nomode.toml").write_text(RELATIVE_ONLY.replace("modes.offload.", "modes.batch."))
    proc = run_cli("gate", work / "baseline-runs" / "base-1", "--rules", "nomode.toml", cwd=work)
    assert proc.returncode == 2 and "metric modes.batch.latency_ms.p95 is missing" in proc.stderr


def test_ratio_only_rules_ignore_the_default_baseline(tmp_path):
    """gates-ci.toml needs no baseline: a committed one with other load parameters must not make it refuse."""
    import shutil

    repo = Path(__file__).resolve().parents[3]
    work = tmp_path / "work"
    (work / "reports").mkdir(parents=True)
    shutil.copytree(repo / "reports" / "baseline", work / "reports" / "baseline")  # 30 s runs
    run = json.loads((repo / "reports" / "baseline" / "baseline.json").read_text())
    summary = json.loads(next((repo / "reports" / "baseline").glob("*.summary.json")).read_text())
    summary["run"]["load"]["duration_s"] = 8.0  # a short CI run
    sync = json.loads(json.dumps(summary["modes"]["offload"]))  # the CI profile compares sync with offload
    sync["latency_ms"] = {k: v * 100 for k, v in sync["latency_ms"].items()}
    summary["modes"]["sync"] = sync
    cand = tmp_path / "cand.summary.json"
    cand.write_text(json.dumps(summary))
    rules = repo / "bench" / "gates-ci.toml"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "gate", str(cand), "--rules", str(rules)],
        cwd=work, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr  # judged, not refused
    assert "not comparable" not in proc.stderr and "baseline: none" in proc.stdout + proc.stderr
    assert run["runs"]  # the committed baseline really is there

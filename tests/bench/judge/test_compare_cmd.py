"""`offload-bench compare`: two runs side by side, with both runs' percentile curves overlaid."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np

from bench.judge.compare_plots import curves, plot_overlay
from bench.judge.gate_inputs import load_summary
from tests.fixtures.gate.synth import make_run, write_run
from tests.scripts import console_script

CLI = console_script("offload-bench")


def test_compare_writes_markdown_and_html_with_overlaid_curves(tmp_path: Path) -> None:
    a_summary, a_raw = make_run(1, windows=20)
    b_summary, b_raw = make_run(2, windows=20, shift_ms={"offload": 50.0})
    b_summary["run"]["workers"] = 4
    write_run(tmp_path / "a", a_summary, a_raw)
    write_run(tmp_path / "b", b_summary, b_raw)
    proc = subprocess.run(
        [CLI, "compare", "a", "b", "--out", "cmp"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        check=False, env=dict(os.environ),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    md = (tmp_path / "cmp" / "compare.md").read_text()
    html = (tmp_path / "cmp" / "compare.html").read_text()
    assert "| workers | 1 | 4 | DIFFERENT |" in md
    a_p95 = a_summary["modes"]["offload"]["latency_ms"]["p95"]
    assert f"| p95 | {a_p95:.3g} ms |" in md
    for mode in ("noop", "sync", "offload"):
        assert (tmp_path / "cmp" / "plots" / f"{mode}.png").stat().st_size > 1000
        assert f"![{mode}](plots/{mode}.png)" in md
    assert html.count("data:image/png;base64,") == 3 and '<td class="diff">DIFFERENT</td>' in html
    assert "verdict" not in md.lower() or "without verdicts" in md  # compare shows, never judges
    assert "FAIL" not in md and "PASS" not in md


def test_curves_come_from_raw_samples_when_present(tmp_path: Path) -> None:
    summary, raw = make_run(3, windows=20)
    write_run(tmp_path / "with", summary, raw)
    write_run(tmp_path / "without", summary)
    from_samples = curves(load_summary(tmp_path / "with"), "A")
    from_summary = curves(load_summary(tmp_path / "without"), "B")
    assert from_samples["offload"].source == "samples" and from_summary["offload"].source == "summary"
    samples = from_samples["offload"].samples_ms
    assert samples is not None and samples.size == summary["modes"]["offload"]["requests"]
    p95 = float(np.percentile(samples, 95))
    assert abs(p95 - summary["modes"]["offload"]["latency_ms"]["p95"]) / p95 < 0.05
    assert list(from_summary["offload"].points or {}) == [50.0, 90.0, 95.0, 99.0, 99.9]
    # A run with samples and one without still plot together (the fallback draws summary points).
    path = plot_overlay(
        "offload", from_samples["offload"], from_summary["offload"], tmp_path / "p.png", 100, 1000
    )
    assert path.stat().st_size > 1000


def test_compare_missing_run_is_a_usage_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [CLI, "compare", "x", "y"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert (
        proc.returncode == 2
        and proc.stderr.startswith("error: no summary at")
        and "Traceback" not in proc.stderr
    )


def test_names_inside_summaries_never_escape_the_report_folder(tmp_path: Path) -> None:
    # issue 14.10: run ids and mode names come from the files compared, not from the user
    a_summary, _ = make_run(4, windows=20)
    b_summary, _ = make_run(5, windows=20)
    a_summary["run"]["run_id"] = "../../../../escaped-a"
    b_summary["run"]["run_id"] = "/tmp/escaped-b"
    for summary in (a_summary, b_summary):
        summary["modes"]["../../evil"] = summary["modes"].pop("noop")
    write_run(tmp_path / "in" / "a", a_summary)
    write_run(tmp_path / "in" / "b", b_summary)
    work = tmp_path / "work"
    work.mkdir()
    before = set(tmp_path.rglob("*"))
    proc = subprocess.run(
        [CLI, "compare", "../in/a", "../in/b"], cwd=work, capture_output=True, text=True, timeout=60,
        check=False, env=dict(os.environ),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    written = set(tmp_path.rglob("*")) - before
    assert written and all(p.resolve().is_relative_to(work / "reports" / "compare") or p == work / "reports"
                           for p in written), sorted(map(str, written))  # fmt: skip
    assert not Path("/tmp/escaped-b").exists()
    (folder,) = (work / "reports" / "compare").iterdir()
    assert len(list((folder / "plots").glob("*.png"))) == 3

"""`offload-bench baseline update` names its files from run ids read from summary.json: hostile ids stay inside."""

from __future__ import annotations

import json
from pathlib import Path

from bench.judge.gate_inputs import load_baseline
from tests.bench.judge.test_gate_cli import run_cli, write_runs

HOSTILE_IDS = ("../../escape", "/tmp/abs/x", "..", ".hidden", "a/../b")


def test_hostile_run_ids_give_plain_file_names_inside_the_baseline_folder(tmp_path: Path) -> None:
    runs = write_runs(tmp_path / "runs", "r", list(range(1, len(HOSTILE_IDS) + 1)))
    for run, run_id in zip(runs, HOSTILE_IDS, strict=True):
        summary = json.loads((run / "summary.json").read_text())
        summary["run_id"] = summary["run"]["run_id"] = run_id  # the gate reads the embedded run.json's
        (run / "summary.json").write_text(json.dumps(summary))
    before = {p for p in tmp_path.rglob("*") if p.is_file()}
    proc = run_cli("baseline", "update", *runs, "--baseline-dir", "work/bl", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    folder = tmp_path / "work" / "bl"
    written = {p for p in tmp_path.rglob("*") if p.is_file()} - before
    assert {p.parent for p in written} == {folder}  # nothing outside the folder named
    names = sorted(p.name for p in written if p.name != "baseline.json")
    assert len(names) == len(HOSTILE_IDS)
    # one plain path component each: no separator, not `..`, nothing hidden (a dot-file is easy to miss)
    assert all(not n.startswith(".") and "/" not in n for n in names), names
    meta = json.loads((folder / "baseline.json").read_text())
    assert sorted(r["file"] for r in meta["runs"]) == names
    assert sorted(r["run_id"] for r in meta["runs"]) == sorted(HOSTILE_IDS)  # the ids themselves are kept
    summaries, _ = load_baseline(folder)  # the gate reads every one back
    assert sorted(s.run_id for s in summaries) == sorted(HOSTILE_IDS)

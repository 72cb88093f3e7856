"""`offload-bench baseline update RUN_DIR...`: replace the committed baseline with these runs' summaries."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from bench.errors import fail
from bench.judge.gate_inputs import (
    BASELINE_META_FILE,
    BASELINE_SUMMARY_GLOB,
    LOAD_KEYS,
    GateInputError,
    Summary,
    load_summaries,
    mismatches,
    schema_problems,
)
from runfolder.rundir import safe_name

BASELINE_SCHEMA_VERSION = 1

baseline_app = typer.Typer(
    help="Manage the committed baseline the gate compares against.",
    no_args_is_help=True,
    add_completion=False,
)


def _git_head() -> str | None:
    """The working tree's commit, used only when the runs do not record theirs."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def baseline_metadata(summaries: list[Summary], files: list[str]) -> dict[str, Any]:
    """baseline.json: git commit, date, load parameters, work profile, machine, and the runs it holds."""
    first = summaries[0].run
    meta = first.meta
    commits = sorted({s.run.meta.git_commit for s in summaries if s.run.meta.git_commit})
    load = first.load.model_dump()
    now = datetime.now(UTC)
    return {
        "schema_version": BASELINE_SCHEMA_VERSION,
        "summary_schema_version": summaries[0].model.schema_version,
        "date": now.isoformat(timespec="seconds"),
        "created_ts": now.timestamp(),
        "git_commit": commits[0] if commits else _git_head(),
        "git_commits": commits,
        "git_dirty": any(bool(s.run.meta.git_dirty) for s in summaries),
        "load": {key: load.get(key) for key in LOAD_KEYS}
        | {k: v for k, v in load.items() if k not in LOAD_KEYS},
        "work_profile": first.work_profile,
        "workers": first.workers,
        "machine": {key: getattr(meta, key) for key in ("host", "cpu_count", "platform", "python")},
        "runs": [
            {
                "run_id": s.run_id,
                "file": name,
                "created_ts": s.run.created_ts,
                "status": s.run.status,
            }
            for s, name in zip(summaries, files, strict=True)
        ],
    }


def _file_names(summaries: list[Summary]) -> list[str]:
    names: list[str] = []
    for s in summaries:
        stem = safe_name(s.run_id)  # the id comes from a file: one plain component, never hidden or `..`
        name, n = f"{stem}.summary.json", 2
        while name in names:
            name, n = f"{stem}-{n}.summary.json", n + 1
        names.append(name)
    return names


@baseline_app.command("update")
def update_command(
    run_dirs: Annotated[
        list[Path], typer.Argument(help="run folders (or summary.json files) forming the baseline")
    ],
    baseline_dir: Annotated[Path, typer.Option("--baseline-dir", help="where the baseline lives")] = Path(
        "reports/baseline"
    ),
    force: Annotated[
        bool, typer.Option("--force", help="accept runs whose load parameters differ (warns)")
    ] = False,
) -> None:
    """Replace the baseline with these runs' summary.json files and write baseline.json metadata."""
    try:
        summaries = load_summaries(run_dirs)
    except GateInputError as exc:
        fail(str(exc))
    problems = schema_problems(summaries) + mismatches(summaries[0], summaries[1:])
    if problems and not force:
        fail(f"runs differ: {'; '.join(problems)}", "a baseline is repeats of one setup; --force")
    for line in problems:
        typer.echo(f"warning: baseline mixes runs: {line}", err=True)
    bad = [s.run_id for s in summaries if s.run.status not in (None, "complete")]
    if bad:
        typer.echo(f"warning: runs not complete: {', '.join(bad)}", err=True)
    baseline_dir.mkdir(parents=True, exist_ok=True)
    # A new baseline replaces the old one: stale summaries would otherwise be pooled with the new ones.
    for old in baseline_dir.glob(BASELINE_SUMMARY_GLOB):
        old.unlink()
    names = _file_names(summaries)
    for summary, name in zip(summaries, names, strict=True):
        shutil.copyfile(summary.path, baseline_dir / name)
    meta = baseline_metadata(summaries, names)
    (baseline_dir / BASELINE_META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    typer.echo(
        f"baseline {baseline_dir}: {len(names)} run(s) ({', '.join(names)}), commit {str(meta['git_commit'])[:12]}"
    )

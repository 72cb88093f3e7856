"""The run folder from Locust's side: open it (given or new), describe the load in run.json, build the report."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from loadtests._options import LoadOptions
from runfolder.rundir import create_run_dir, init_run_json, read_run_json
from runfolder.schema import RUN_FILE

_log = logging.getLogger("loadtests")


def open_run_dir(given: str) -> tuple[Path, bool]:
    """(run folder, created by us): the given folder (run.json started if missing) or a new reports/runs/<id>/."""
    if not given:
        return create_run_dir(), True
    run_dir = Path(given)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / RUN_FILE).exists():
        init_run_json(run_dir)
    return run_dir, False


def start_patch(
    run_dir: Path, opts: LoadOptions, parsed: Any, processes: int, start_ts: float, host: str | None
) -> dict[str, Any]:
    """The run.json patch written when a test starts: the load parameters and the mode's start.

    Load keys a wrapper (offload-bench run) already wrote are kept: it knows the whole run's configuration.
    """
    load = {
        "model": opts.model,
        "users": parsed.num_users,
        "spawn_rate": parsed.spawn_rate,
        "arrival_rate": opts.arrival_rate,
        "arrival": opts.arrival,
        "shape": opts.shape or "constant",
        "duration_s": parsed.run_time,
        "processes": processes,
        "max_in_flight": opts.max_in_flight,
        "seed": opts.seed,
    }
    written = read_run_json(run_dir).get("load") or {}
    return {
        "load": {k: v for k, v in load.items() if k not in written},
        "modes": {opts.mode: {"start_ts": start_ts, "host": host}},
    }


def build_report(run_dir: Path) -> None:
    """Build the run's report with analysis, or say which command does it."""
    hint = f"build the report with: offload-bench report {run_dir}"
    try:
        from analysis.report import build_report as analysis_build_report
    except ImportError:
        _log.info(hint)
        return
    try:
        analysis_build_report(run_dir)
    except Exception as exc:  # the load ran fine; a report problem must not lose the run
        _log.warning("report not built (%s): %s", exc, hint)
        return
    _log.info("report: %s", run_dir / "report.html")

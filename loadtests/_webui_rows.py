"""The Offload tab's table (loadtests/_webui.py): its columns, and one row per run of the web UI session, from
the run folder's raw samples while the run goes on and from its summary.json once it is done."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from analysis.config import Thresholds
from loadtests._jobside import JobSide, backlog
from loadtests._live import LiveNumbers
from loadtests._owner import RunOwner
from runfolder.schema import SUMMARY_FILE

TAB: Final = "offload"  # the tab's key in Locust's UI, and the first part of its routes


def _ms(value: Any) -> Any:
    return "" if value is None else round(float(value), 1)


def columns(th: Thresholds) -> list[dict[str, str]]:
    """The tab's table: Locust's extended_tables structure."""
    titles = {
        "run": "Run",
        "mode": "Mode",
        "state": "State",
        "requests": "Requests",
        "p50": "p50 ms",
        "p95": "p95 ms",
        "p99": "p99 ms",
        "verdict": f"Verdict ({th.percentile} vs {th.fast_ms:g}/{th.slow_ms:g} ms)",
        "errors": "Errors",
        "lateness": "Send lateness p50/p99/max ms (late)",
        "accepted": "Accepted",
        "completed": "Completed",
        "pending": "Pending",
        "dead": "Dead",
        "lost": "Lost",
        "report": "Report",
    }
    return [{"key": key, "title": title} for key, title in titles.items()]


class RunView:
    """One run of this UI session as the tab shows it."""

    def __init__(self, owner: RunOwner, th: Thresholds) -> None:
        self.owner = owner
        self.run_id = owner.run_dir.name
        self.jobside: JobSide | None = owner.jobside  # kept: the owner lets go of it when the run finishes
        opts = owner.opts
        self.live = LiveNumbers(owner.run_dir, opts.mode, opts.model, opts.late_threshold_ms, th)
        self.th = th
        self._final: dict[str, Any] | None = None

    @property
    def report(self) -> Path:
        """This run's report.html (once built)."""
        return self.owner.run_dir / "report.html"

    @property
    def state(self) -> str:
        """running | finishing (drain, export, report) | done | done, no report."""
        if not self.owner.done:
            return "running" if self.owner.end_ts is None else "finishing"
        return "done" if self.report.exists() else "done, no report"

    def row(self) -> dict[str, Any]:
        """The table row: summary.json's numbers once the run is done, live ones before."""
        state = self.state
        numbers = self._summary() if state == "done" else None
        row = self._summary_row(numbers) if numbers is not None else self._live_row()
        base = {"run": self.run_id, "mode": self.owner.opts.mode, "state": state}
        # from Stop on: the page behind it waits for the report (a run folder given with --run-dir gets none)
        ours = self.owner.created_run_dir and state != "running"
        report = f"{TAB}/runs/{self.run_id}/report.html" if ours else ""
        return {**base, **row, "report": report}

    def _summary(self) -> dict[str, Any] | None:
        if self._final is None:
            try:
                data = json.loads((self.owner.run_dir / SUMMARY_FILE).read_text())
                self._final = data["modes"][self.owner.opts.mode]
            except (OSError, ValueError, KeyError, TypeError):
                return None
        return self._final

    def _live_row(self) -> dict[str, Any]:
        n = self.live.numbers()
        lat, late = n["latency_ms"], n["send_lateness_ms"]
        row = {
            "requests": n["requests"],
            "p50": _ms(lat["p50"]),
            "p95": _ms(lat["p95"]),
            "p99": _ms(lat["p99"]),
            "verdict": _verdict(n["verdict"], n["enough_samples"]),
            "errors": _errors(n["failures"], n["error_rate"]),
            "lateness": _lateness(late, n["late"]),
        }
        if self.owner.opts.job_mode:
            row.update(self._live_jobs(n["accepted"]))
        return row

    def _live_jobs(self, accepted: int) -> dict[str, Any]:
        """Accepted from the samples; the rest from the queue's latest depth sample (lost: known at the end)."""
        jobs: dict[str, Any] = {"accepted": accepted, "lost": "at the end"}
        first, last = (self.jobside.first, self.jobside.last) if self.jobside is not None else (None, None)
        if first is not None and last is not None:
            jobs.update(
                completed=last["completed"] - first["completed"],
                pending=backlog(last),
                dead=last["dlq"] - first["dlq"],
            )
        return jobs

    def _summary_row(self, mode: dict[str, Any]) -> dict[str, Any]:
        lat = mode.get("latency_ms") or {}
        target = mode.get("target") or {}
        key = target.get("percentile") or self.th.percentile
        enough = (mode.get("enough_samples") or {}).get(key, True)
        row: dict[str, Any] = {
            "requests": mode.get("requests"),
            "p50": _ms(lat.get("p50")),
            "p95": _ms(lat.get("p95")),
            "p99": _ms(lat.get("p99")),
            "verdict": _verdict(target.get("verdict"), enough),
            "errors": _errors(mode.get("failures") or 0, mode.get("error_rate")),
            "lateness": _lateness(
                mode.get("send_lateness_ms"), (mode.get("load_generator") or {}).get("late")
            ),
        }
        jobs = mode.get("jobs")
        if jobs:
            row.update(
                accepted=jobs.get("accepted"),
                completed=jobs.get("completed"),
                pending=jobs.get("pending"),
                dead=jobs.get("dead_lettered"),
                lost=jobs.get("lost"),
            )
        return row


def _verdict(verdict: str | None, enough: bool) -> str:
    if verdict is None:
        return ""
    return verdict if enough else f"{verdict} (few samples)"


def _errors(failures: int, rate: float | None) -> str:
    return f"{failures} ({rate:.2%})" if rate is not None else str(failures)


def _lateness(late: dict[str, Any] | None, count: int | None) -> str:
    if not late or late.get("p50") is None:
        return ""
    return f"{_ms(late['p50'])} / {_ms(late['p99'])} / {_ms(late['max'])} ({count or 0} late)"


def table_rows(views: list[RunView]) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    rows, failed = [], []
    for view in views:
        try:
            rows.append(view.row())
        except Exception as exc:  # a half-written file must not break Locust's own stats answer
            failed.append((view.run_id, repr(exc)))
    return rows, failed

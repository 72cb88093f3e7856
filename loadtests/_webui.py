"""The Offload tab of Locust's web UI (`locust -f loadtests/` without --headless), through Locust's own hooks.

`extended_tabs`/`extended_tables` in web_ui.template_args (so the tab is on `/`), `extended_stats` added to every
/stats/requests answer (the UI polls it every 2 s while a test runs), and routes on web_ui.app behind
auth_required_if_enabled (so behind --web-login). One row per run of this UI session, newest first: live numbers
from the run folder's raw samples while it runs, summary.json's once Stop has closed the run (loadtests/_hooks.py
finishes it in a greenlet: drain, job export, report). The report cell's path becomes a link (a few lines of
script: Locust's table cells are plain text).
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Protocol

import gevent
from flask import Response, make_response, request, send_file
from gevent.lock import Semaphore

from analysis.config import Thresholds, load_thresholds
from loadtests._jobside import JobSide, backlog
from loadtests._live import LiveNumbers
from loadtests._owner import RunOwner
from runfolder.schema import SUMMARY_FILE


class Capture(Protocol):
    """What the tab reads of loadtests._hooks.Capture (a protocol: _hooks imports this module)."""

    owner: RunOwner | None


TAB: Final = "offload"
RUNS_SHOWN: Final = 20
LATEST: Final = "latest"
REFRESH_PAGE_S: Final = 2
_log = logging.getLogger("loadtests")

# the report cell holds "offload/runs/<run id>/report.html" (relative to the UI's page): a link beside it
_LINKIFY: Final = """<script>
(function () {
  var report = /^offload\\/runs\\/[^\\/\\s]+\\/report\\.html$/;
  function linkify() {
    document.querySelectorAll("td").forEach(function (td) {
      var text = td.firstChild, a = td.querySelector("a.ob-report");
      if (!text || text.nodeType !== 3 || !report.test(text.nodeValue)) {
        if (a) a.remove();  /* React reuses rows by position: a row now showing a running run has none */
        return;
      }
      if (!a) {
        a = document.createElement("a");
        a.className = "ob-report"; a.target = "_blank"; a.textContent = "open"; a.style.marginLeft = "0.5em";
        td.appendChild(a);  /* beside React's own text node, which it keeps updating */
      }
      if (a.getAttribute("href") !== text.nodeValue) a.setAttribute("href", text.nodeValue);
    });
  }
  new MutationObserver(linkify).observe(document.body, {childList: true, subtree: true, characterData: true});
})();
</script>"""


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


def _rows(views: list[RunView]) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    rows, failed = [], []
    for view in views:
        try:
            rows.append(view.row())
        except Exception as exc:  # a half-written file must not break Locust's own stats answer
            failed.append((view.run_id, repr(exc)))
    return rows, failed


class OffloadTab:
    """The tab, its data on /stats/requests and the report route of one Locust web UI."""

    def __init__(self, environment: Any, capture: Capture, th: Thresholds) -> None:
        self.env = environment
        self.capture = capture
        self.th = th
        self.runs: dict[str, RunView] = {}
        self._lock = Semaphore()

    def on_test_start(self, **_: Any) -> None:
        """A new run of this UI session (Capture's listener, registered before, has opened its folder)."""
        owner = self.capture.owner
        if owner is not None:
            self.runs[owner.run_dir.name] = RunView(owner, self.th)
            for old in list(self.runs)[:-RUNS_SHOWN]:
                del self.runs[old]

    def extended_stats(self) -> list[dict[str, Any]]:
        """/stats/requests' extended_stats: the tab's rows, newest run first.

        Computed in a thread of gevent's pool: numpy's partitions and pandas' parser release the GIL, so the
        load's greenlets keep their schedule (a refresh over a million samples blocked the loop 35-45 ms when
        run on it, under 10 ms from the pool); the lock makes concurrent polls wait for one computation.
        """
        with self._lock:
            views = list(reversed(self.runs.values()))  # not iterated in the thread: a Start may add one
            rows, failed = gevent.get_hub().threadpool.apply(_rows, (views,))
        for run_id, error in failed:  # logged here: logging's locks are gevent's, not for a native thread
            _log.warning("offload tab: run %s not shown: %s", run_id, error)
        return [{"key": TAB, "data": rows}]

    def report_page(self, run_id: str) -> Response:
        """A run's report.html; until it is built, a page saying why that reloads itself."""
        view = self.runs.get(run_id) if run_id != LATEST else next(reversed(self.runs.values()), None)
        if view is None:
            return make_response("no such run in this web UI session", 404)
        state = view.state
        if state == "done":
            return send_file(view.report.resolve(), mimetype="text/html")
        if state == "running":
            what = "is running: press Stop to end it; its report is built then"
        elif state == "finishing":
            what = "has stopped: waiting for the job backlog (bounded), exporting jobs, building the report"
        else:
            what = f"has no report here: build it with `offload-bench report {view.owner.run_dir}`"
        refresh = (
            f'<meta http-equiv="refresh" content="{REFRESH_PAGE_S}">' if state != "done, no report" else ""
        )
        body = f"<!doctype html><title>run {html.escape(view.run_id)}</title>{refresh}"
        body += f"<p>Run {html.escape(view.run_id)} {html.escape(what)}.</p>"
        return make_response(body, 200)

    def after_request(self, response: Response) -> Response:
        """Add the tab's rows to Locust's /stats/requests answer; the link script to its page."""
        endpoint = request.endpoint
        if endpoint == "locust.request_stats" and response.status_code == 200:
            data = response.get_json(silent=True)
            if isinstance(data, dict):
                response.set_data(json.dumps({**data, "extended_stats": self.extended_stats()}))
        elif endpoint == "locust.index" and response.status_code == 200 and response.mimetype == "text/html":
            page = response.get_data(as_text=True)
            if "</body>" in page:
                response.set_data(page.replace("</body>", _LINKIFY + "</body>", 1))
        return response


def install(environment: Any, capture: Capture) -> OffloadTab:
    """Add the Offload tab to this process's web UI (init listener of the run owner)."""
    web_ui = environment.web_ui
    tab = OffloadTab(environment, capture, load_thresholds())
    web_ui.template_args.update(
        extended_tabs=[{"title": "Offload", "key": TAB}],
        extended_tables=[{"key": TAB, "structure": columns(tab.th)}],
        extended_csv_files=[
            {"href": f"./{TAB}/runs/{LATEST}/report.html", "title": "Offload report (latest run)"}
        ],
    )
    environment.events.test_start.add_listener(tab.on_test_start)
    base = (getattr(environment.parsed_options, "web_base_path", "") or "").rstrip("/")
    guarded: Callable[..., Response] = web_ui.auth_required_if_enabled(tab.report_page)
    web_ui.app.add_url_rule(
        f"{base}/{TAB}/runs/<run_id>/report.html", endpoint="offload_report", view_func=guarded
    )
    web_ui.app.after_request(tab.after_request)
    return tab

"""The Offload tab of Locust's web UI (`locust -f loadtests/` without --headless), through Locust's own hooks.

`extended_tabs`/`extended_tables` in web_ui.template_args (so the tab is on `/`), `extended_stats` added to every
/stats/requests answer (the UI polls it every 2 s while a test runs), and routes on web_ui.app behind
auth_required_if_enabled (so behind --web-login). One row per run of this UI session, newest first: live numbers
from the run folder's raw samples while it runs, summary.json's once Stop has closed the run (loadtests/_hooks.py
finishes it in a greenlet: drain, job export, report). The report cell's path becomes a link (a few lines of
script: Locust's table cells are plain text). The table itself, its columns and rows: _webui_rows.py.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable
from typing import Any, Final, Protocol

import gevent
from flask import Response, make_response, request, send_file
from gevent.lock import Semaphore

from analysis.config import Thresholds, load_thresholds
from loadtests._owner import RunOwner
from loadtests._webui_rows import TAB, RunView, columns, table_rows


class Capture(Protocol):
    """What the tab reads of loadtests._hooks.Capture (a protocol: _hooks imports this module)."""

    owner: RunOwner | None


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
            rows, failed = gevent.get_hub().threadpool.apply(table_rows, (views,))
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

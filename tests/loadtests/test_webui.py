"""`locust -f loadtests/` with its web UI: the Offload tab, Stop = a finished run, no secret in any page.

Real Locust (a subprocess), the real service (API + worker) and the session's password-protected Redis.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from analysis.render_rows import ms
from bench.launch.redis_server import free_port
from tests.loadtests.helpers import (
    LOADTESTS,
    LOCUST,
    REPO,
    Server,
    WebUi,
    clean_env,
    run_json,
    run_locust,
    start_webui,
)
from tests.service.conftest import ApiProcess

DRAIN_S = 10
# Stop -> report.html: the drain bound, the job export (bounded alike) and the report build, with room to spare
FINISH_BOUND_S = 2 * DRAIN_S + 20
RATE = "20"
LOAD_S = 3.0


def offload_ui(stack: ApiProcess, redis_url: str, cwd: Path) -> WebUi:
    """The web UI of an offload run in the open model, at a small rate."""
    return start_webui(
        stack.url, cwd, "--web-host", "127.0.0.1", "--mode", "offload", "--arrival-rate", RATE,
        "--redis-url", redis_url, "--drain-timeout-s", str(DRAIN_S),
    )  # fmt: skip


def offload_rows(ui: WebUi) -> list[dict[str, Any]]:
    """The Offload tab's rows in the current /stats/requests answer (newest run first)."""
    stats = httpx.get(ui.url + "/stats/requests", timeout=10).json()
    (tab,) = [s for s in stats["extended_stats"] if s["key"] == "offload"]
    rows: list[dict[str, Any]] = tab["data"]
    return rows


def wait_done(ui: WebUi, run_id: str, bound_s: float) -> dict[str, Any]:
    """The run's row once its state is done; fails after bound_s."""
    deadline = time.monotonic() + bound_s
    while True:
        row = next(r for r in offload_rows(ui) if r["run"] == run_id)
        if row["state"].startswith("done"):
            return row
        assert time.monotonic() < deadline, (row, ui.output()[-3000:])
        time.sleep(0.5)


def test_start_stop_twice_gives_two_finished_runs_and_no_secret_in_any_page(
    stack: ApiProcess, redis_url: str, tmp_path: Path
) -> None:
    password = urlsplit(redis_url).password
    assert password, "the session Redis must have a password for this test to mean anything"
    ui = offload_ui(stack, redis_url, tmp_path)
    seen: list[str] = []  # every page and answer the UI served
    try:
        page = httpx.get(ui.url + "/", timeout=10).text
        seen.append(page)
        assert '"extended_tabs": [{"key": "offload", "title": "Offload"}]' in page, page[-2000:]
        assert "redis_url" not in page  # a secret option is not on the form at all
        runs: list[tuple[str, dict[str, Any]]] = []
        built: dict[str, int] = {}  # report.html's mtime when the run was done
        for _ in range(2):
            started = httpx.post(ui.url + "/swarm", data={"user_count": "1", "spawn_rate": "1"}, timeout=10)
            assert started.json()["success"], started.text
            time.sleep(LOAD_S)
            rows = offload_rows(ui)
            seen.append(json.dumps(rows))
            live = rows[0]
            assert live["state"] == "running" and live["mode"] == "offload", rows
            assert live["requests"] > 0 and live["p95"] != "" and live["accepted"] > 0, live
            assert httpx.post(ui.url + "/stop", timeout=10).json()["success"]
            row = wait_done(ui, live["run"], FINISH_BOUND_S)
            runs.append((live["run"], row))
            built[live["run"]] = (
                (tmp_path / "reports" / "runs" / live["run"] / "report.html").stat().st_mtime_ns
            )
            report = httpx.get(ui.url + "/" + row["report"], timeout=10)
            assert report.status_code == 200 and "<html" in report.text[:500].lower(), report.text[:500]
        seen.append(httpx.get(ui.url + "/stats/requests", timeout=10).text)
        for page_path in ("/logs", "/exceptions", "/stats/report", "/stats/requests/csv"):
            seen.append(httpx.get(ui.url + page_path, timeout=10).text)
        seen.append(httpx.get(ui.url + "/", timeout=10).text)
    finally:
        assert ui.quit() == 0, ui.output()[-3000:]
    (first, first_row), (second, second_row) = runs
    assert first != second
    runs_dir = tmp_path / "reports" / "runs"
    folders = sorted(runs_dir.iterdir())
    assert [f.name for f in folders] == sorted([first, second]), "one run folder per Start, none at quit"
    for folder, row in ((runs_dir / first, first_row), (runs_dir / second, second_row)):
        assert run_json(folder)["status"] == "complete"
        summary = json.loads((folder / "summary.json").read_text())["modes"]["offload"]
        assert row["state"] == "done" and row["p95"] == round(summary["latency_ms"]["p95"], 1), (row, summary)
        assert row["requests"] == summary["requests"] and row["accepted"] == summary["jobs"]["accepted"]
        assert row["lost"] == 0 and row["completed"] == summary["jobs"]["completed"] > 0
    assert built == {f.name: (f / "report.html").stat().st_mtime_ns for f in folders}, "quit rebuilt a report"
    for text in [*seen, ui.output()]:
        assert password not in text


CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip
COLUMN = {"run": 0, "state": 2, "requests": 3, "p95": 5}  # the Offload table's columns (loadtests/_webui.py)


def wait_for(what: str, check: Callable[[], Any], bound_s: float) -> Any:
    """check()'s first truthy value, polled; fails naming what after bound_s."""
    deadline = time.monotonic() + bound_s
    while not (value := check()):
        assert time.monotonic() < deadline, f"no {what} within {bound_s} s"
        time.sleep(0.25)
    return value


@pytest.mark.needs_tool("chromium")
def test_offload_tab_in_a_browser_start_live_numbers_stop_report(
    stack: ApiProcess, redis_url: str, tmp_path: Path
) -> None:
    """What a user does: start from the form, watch the Offload tab's numbers move, Stop, open the report."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright not importable: pip install -e '.[dev]'"
    )
    ui = offload_ui(stack, redis_url, tmp_path)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.set_default_timeout(15_000)
            page.goto(ui.url + "/")
            page.get_by_role("button", name="Start").click()  # the form's defaults: 1 stream, --arrival-rate
            page.get_by_role("tab", name="Offload").click()
            row = page.locator("tbody tr").first
            cell = row.locator("td")

            def requests() -> int:
                text = cell.nth(COLUMN["requests"]).inner_text() if row.count() else ""
                return int(text) if text.isdigit() else 0

            first = wait_for("requests in the Offload tab", requests, 15)
            wait_for("a moving request count", lambda: requests() > first, 10)
            assert cell.nth(COLUMN["state"]).inner_text() == "running"
            assert float(cell.nth(COLUMN["p95"]).inner_text()) > 0
            page.get_by_role("button", name="Stop").click()
            link = page.locator("a.ob-report")
            link.wait_for(timeout=15_000)
            run_id = cell.nth(COLUMN["run"]).inner_text()
            href = link.get_attribute("href")
            assert href == f"offload/runs/{run_id}/report.html"
            report = browser.new_page()
            report.goto(f"{ui.url}/{href}")  # reloads itself until the report is built
            report.locator("table.headline").wait_for(timeout=FINISH_BOUND_S * 1000)
            shown_p95 = report.locator("table.headline tbody tr").first.locator("td").nth(4).inner_text()
            page.reload()
            page.get_by_role("tab", name="Offload").click()
            tab_p95 = float(cell.nth(COLUMN["p95"]).inner_text())
            browser.close()
    finally:
        assert ui.quit() == 0, ui.output()[-3000:]
    summary = json.loads((tmp_path / "reports" / "runs" / run_id / "summary.json").read_text())
    p95 = summary["modes"]["offload"]["latency_ms"]["p95"]
    assert shown_p95 == ms(p95) and tab_p95 == round(p95, 1), (shown_p95, tab_p95, p95)


def test_the_documented_config_binds_the_web_ui_to_loopback_and_still_runs_headless(
    testapp: Server, tmp_path: Path
) -> None:
    """loadtests/locust.conf says web-host = 127.0.0.1; a headless run with it is unchanged."""
    script = (
        "import sys; import loadtests._hooks; from locust.argument_parser import parse_options; "
        "print(parse_options(sys.argv[1:]).web_host)"
    )
    config = ["-f", str(LOADTESTS), "--config", str(LOADTESTS / "locust.conf")]
    parsed = subprocess.run(
        [sys.executable, "-c", script, *config],
        cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert parsed.returncode == 0 and parsed.stdout.split()[-1] == "127.0.0.1", parsed.stderr[-2000:]
    run_dir = tmp_path / "run"
    headless = run_locust(
        testapp.url, tmp_path, *config[2:], "-u", "1", "-t", "1s", "--run-dir", str(run_dir)
    )
    assert headless.returncode == 0, headless.stdout[-3000:]
    assert run_json(run_dir)["modes"]["noop"]["samples"] > 0


def test_stop_in_a_master_web_ui_finishes_the_run_with_the_workers_counts(
    testapp: Server, tmp_path: Path
) -> None:
    """Distributed: the master owns the run folder; Stop closes it once the workers' last counts are in."""
    master_port = str(free_port())
    ui = start_webui(
        testapp.url, tmp_path, "--master", "--master-bind-port", master_port, "--mode", "noop",
        "--arrival-rate", RATE,
    )  # fmt: skip
    with (tmp_path / "worker.log").open("wb") as out:
        worker = subprocess.Popen(
            [*LOCUST, "-f", str(LOADTESTS), "--worker", "--master-port", master_port],
            cwd=tmp_path, env=clean_env(), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for("a connected worker", lambda: httpx.get(ui.url + "/stats/requests").json()["workers"], 20)
        assert httpx.post(ui.url + "/swarm", data={"user_count": "1", "spawn_rate": "1"}).json()["success"]
        time.sleep(LOAD_S)
        assert httpx.post(ui.url + "/stop", timeout=10).json()["success"]
        row = wait_done(ui, offload_rows(ui)[0]["run"], FINISH_BOUND_S)
    finally:
        assert ui.quit() == 0, ui.output()[-3000:]
        worker.wait(30)
    modes = run_json(tmp_path / "reports" / "runs" / row["run"])["modes"]["noop"]
    assert row["state"] == "done" and modes["samples"] == modes["locust_requests"] == row["requests"] > 0
    assert "Locust counted" not in ui.output()

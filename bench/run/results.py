"""The short result table printed at the end of a run, from summary.json."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.table import Table

_STYLE = {"fast": "green", "ok": "yellow", "slow": "red"}


def _ms(value: Any) -> str:
    return f"{value:,.1f}" if isinstance(value, int | float) else "-"


def result_table(summary: dict[str, Any]) -> Table:
    """Per mode: requests, req/s, p50/p95/p99, verdict, Apdex, errors, offload end-to-end and lost jobs."""
    percentile = next(
        (m.get("target", {}).get("percentile") for m in summary.get("modes", {}).values()), "p95"
    )
    table = Table(
        title="API latency in ms (exact, from raw samples)",
        caption="one machine shared by the load generator, the API, Redis and the workers",
    )
    cols = ("mode", "requests", "req/s", "p50", "p95", "p99", f"verdict ({percentile})", "Apdex", "errors")
    for col in (*cols, "job e2e p95", "lost jobs"):
        left = col == "mode" or col.startswith("verdict")
        table.add_column(col, justify="left" if left else "right", no_wrap=True)
    for mode, m in summary.get("modes", {}).items():
        lat = m.get("latency_ms") or {}
        target = m.get("target") or {}
        verdict = str(target.get("verdict", "-"))
        jobs = m.get("jobs") or {}
        lost = jobs.get("lost")
        table.add_row(
            mode,
            f"{m.get('requests') or 0:,}",
            _ms(m.get("rps")),
            _ms(lat.get("p50")),
            _ms(lat.get("p95")),
            _ms(lat.get("p99")),
            f"[{_STYLE.get(verdict, 'white')}]{verdict}[/]",
            f"{target['apdex']:.2f}" if isinstance(target.get("apdex"), int | float) else "-",
            f"{m.get('failures') or 0:,}",
            _ms((jobs.get("e2e_ms") or {}).get("p95")) if jobs else "",
            ("[red]" + str(lost) + "[/]" if lost else str(lost)) if jobs else "",
        )
    return table


def print_results(console: Console, summary: dict[str, Any]) -> None:
    """Print the table (on stdout: it is the result) and the validity notes."""
    out = Console(width=None if sys.stdout.isatty() else 130)
    out.print(result_table(summary))
    validity = summary.get("validity") or {}
    if not validity.get("valid", True):
        console.print("[yellow]validity: the numbers above should not be fully trusted:[/]")
    for note in validity.get("notes", []):
        console.print(f"  - {note}")

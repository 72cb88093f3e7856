"""The shoot-out's presentation (bench_queues.py): one row per library x settings x fault x mode as a rich
table, Markdown for benchmarks/README.md, and the plot. Figures a library cannot give are said, never 0."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rich.table import Table


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}"


def _n(value: Any) -> str:
    return "n/a" if value is None else str(value)


COLUMNS = (
    "library", "settings", "fault", "mode", "requests", "API p50 ms", "API p99 ms", "queue wait p50 ms",
    "e2e p95 ms", "accepted", "completed", "in flight at kill", "lost", "unknown", "dead", "dup", "pending",
    "recovery s",
)  # fmt: skip


def cells_of(row: dict[str, Any]) -> list[str]:
    """One row's printed cells (a figure the library cannot give says so; never 0)."""
    head = [row["library"], row["settings"], row["fault"], row["mode"]]
    if row.get("error"):
        return [*head, row["error"], *[""] * (len(COLUMNS) - 5)]
    wait = row["queue_wait_note"] or _ms(row["queue_wait_p50_ms"])
    e2e = row["e2e_p95_ms"]
    lib = "the sample service" if row["library"] == "sample" else row["library"]
    e2e_cell = f"n/a — {lib} keeps no end time" if e2e is None and row["completed"] else _ms(e2e)
    p99 = _ms(row["api_p99_ms"]) + ("" if row["enough_p99"] else "*")
    rec = "" if row["recovery_s"] is None else f"{row['recovery_s']:.1f}"
    in_flight = "" if not row["fault_detail"] else _n(row["fault_detail"].get("in_flight"))
    return [*head, _n(row["requests"]), _ms(row["api_p50_ms"]), p99, wait, e2e_cell,
            _n(row["accepted"]), _n(row["completed"]), in_flight, _n(row["lost"]), _n(row["unknown"]), _n(row["dead"]),
            _n(row["duplicates"]), _n(row["pending"]), rec]  # fmt: skip


def rich_table(rows: list[dict[str, Any]]) -> Table:
    t = Table(title="queue shoot-out: one worker, 0.2 s I/O jobs, open-model load")
    for col in COLUMNS:
        t.add_column(col, justify="left" if col in COLUMNS[:4] else "right", overflow="fold")
    for row in rows:
        t.add_row(*cells_of(row))
    return t


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells_of(row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Left: enqueue API p50/p99 and end-to-end p95 (ms, log); right: the jobs' fates after the fault."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if not r.get("error")]
    if not ok:
        return
    labels = [f"{r['library']} {r['settings']} {r['mode']}\n{r['fault']}" for r in ok]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 0.5 * len(ok) + 2), sharey=True)
    ys = list(range(len(ok)))
    h = 0.27
    for i, (key, name) in enumerate((("api_p50_ms", "API p50"), ("api_p99_ms", "API p99"),
                                     ("e2e_p95_ms", "end-to-end p95"))):  # fmt: skip
        vals = [r[key] if r[key] is not None else math.nan for r in ok]
        ax1.barh([y + (i - 1) * h for y in ys], vals, height=h, label=name)
    ax1.set_xscale("log")
    ax1.set_xlabel("ms (log; a missing bar: the library cannot give it)")
    ax1.set_yticks(ys, labels, fontsize=7)
    ax1.invert_yaxis()
    ax1.legend(fontsize=8)
    left = [0.0] * len(ok)
    for key, colour in (("pending", "#fc6"), ("dead", "#c6c"), ("unknown", "#aaa"), ("lost", "#e44"),
                        ("duplicates", "#48c")):  # fmt: skip
        vals = [float(r[key] or 0) for r in ok]
        ax2.barh(ys, vals, left=left, label=key, color=colour)
        left = [a + b for a, b in zip(left, vals, strict=True)]
    for y, r, x in zip(ys, ok, left, strict=True):
        flight = (
            ""
            if not r.get("fault_detail")
            else f", {r['fault_detail'].get('in_flight')} in flight at the kill"
        )
        ax2.text(x + 0.1, y, f"{r['completed']}/{r['accepted']} known done{flight}", va="center", fontsize=7)
    ax2.set_xscale("symlog", linthresh=2)  # one lost job and 60 unknown ones both visible
    ax2.set_xlim(0, max(8.0, max(left) * 4))
    ax2.set_xlabel("jobs not known done after the drain (pending, dead, unknown, lost) + duplicates (symlog)")
    ax2.legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

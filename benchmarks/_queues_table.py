"""The shoot-out's presentation (bench_queues.py): one row per library x settings x fault x mode as a rich
table, Markdown for benchmarks/README.md, and the plot. Figures a library cannot give are said, never 0."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rich.table import Table

BACKLOG_MIN_S = 1.0  # saturated: the last job ended >= this long after the last arrival (5 jobs of 0.2 s)


def saturation(records: list[dict[str, Any]], lib: str) -> dict[str, Any]:
    """One worker's completed jobs/s while never idle, from a saturation run's job records (jobs/<mode>.jsonl).

    rate = jobs done / (last done_ts - first attempt start_ts); a library that records no start (Celery) gives
    (done - 1) / (last done_ts - first done_ts), the rate between completions; one that records no end time
    (Dramatiq) gives none. `saturated` says the backlog outlived the arrivals by BACKLOG_MIN_S (the worker had
    work queued until the load ended, and was draining after it).
    """
    done = [r for r in records if r.get("state") == "done" and _finite(r.get("done_ts"))]
    ends = [float(r["done_ts"]) for r in done]
    starts = [float(a["start_ts"]) for r in done for a in (r.get("attempts") or [])
              if isinstance(a, dict) and _finite(a.get("start_ts"))]  # fmt: skip
    enq = [float(r["enqueued_ts"]) for r in records if _finite(r.get("enqueued_ts"))]
    out: dict[str, Any] = {"done": len(done), "accepted": len(records), "jobs_per_s": None, "basis": None,
                           "window_s": None, "backlog_s": None, "saturated": None, "note": None}  # fmt: skip
    if not ends:
        out["note"] = f"n/a — {lib} keeps no end time" if records else "n/a — no job records"
        return out
    if starts:
        window, n, basis = max(ends) - min(starts), len(done), "first start → last end"
    else:
        window, n, basis = max(ends) - min(ends), len(done) - 1, "first end → last end (no start time)"
    if n < 2 or window <= 0:
        out["note"] = f"n/a — {len(done)} job(s) done"
        return out
    out.update(jobs_per_s=n / window, basis=basis, window_s=window)
    if enq:
        out["backlog_s"] = max(ends) - max(enq)
        out["saturated"] = out["backlog_s"] >= BACKLOG_MIN_S
    return out


def saturation_of_folder(run: Path, mode: str, lib: str) -> dict[str, Any]:
    """saturation() of a run folder's jobs/<mode>.jsonl (bad lines skipped)."""
    path = run / "jobs" / f"{mode}.jsonl"
    records: list[dict[str, Any]] = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                records.append(rec)
    return saturation(records, lib)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def sat_cell(row: dict[str, Any]) -> str:
    """The saturation column: jobs/s ('†': from end times only; '≥ ...': the worker kept up), or why not."""
    sat = row.get("saturation")
    if not sat:
        return ""
    if sat.get("jobs_per_s") is None:
        return str(sat.get("note") or "n/a")
    mark = "" if sat["basis"].startswith("first start") else "†"
    if not sat.get("saturated"):  # the worker kept up with the arrivals: a lower bound, not its capacity
        return f"≥ {sat['jobs_per_s']:.1f}{mark} (kept up: not saturated)"
    return f"{sat['jobs_per_s']:.1f}{mark}"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}"


def _n(value: Any) -> str:
    return "n/a" if value is None else str(value)


COLUMNS = (
    "library", "settings", "fault", "mode", "requests", "API p50 ms", "API p99 ms", "queue wait p50 ms",
    "e2e p95 ms", "1 worker jobs/s at saturation", "accepted", "completed", "in flight at kill", "lost", "unknown", "dead", "dup", "pending",
    "recovery s",
)  # fmt: skip


def cells_of(row: dict[str, Any]) -> list[str]:
    """One row's printed cells (a figure the library cannot give says so; never 0)."""
    head = [row["library"], row["settings"], row["fault"], row["mode"]]
    if row.get("error"):
        return [*head, row["error"], *[""] * (len(COLUMNS) - 5)]
    if row.get("requests") is None and row.get("saturation"):  # a cell not run: the library cannot give it
        return [*head, "not run", "", "", "", "", sat_cell(row), *[""] * (len(COLUMNS) - 10)]
    wait = row["queue_wait_note"] or _ms(row["queue_wait_p50_ms"])
    e2e = row["e2e_p95_ms"]
    lib = "the sample service" if row["library"] == "sample" else row["library"]
    e2e_cell = f"n/a — {lib} keeps no end time" if e2e is None and row["completed"] else _ms(e2e)
    p99 = _ms(row["api_p99_ms"]) + ("" if row["enough_p99"] else "*")
    rec = "" if row["recovery_s"] is None else f"{row['recovery_s']:.1f}"
    in_flight = "" if not row["fault_detail"] else _n(row["fault_detail"].get("in_flight"))
    return [*head, _n(row["requests"]), _ms(row["api_p50_ms"]), p99, wait, e2e_cell, sat_cell(row),
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

    ok = [r for r in rows if not r.get("error") and r.get("requests") is not None]
    if not ok:
        return
    labels = [f"{r['library']} {r['settings']} {r['mode']}\n{r['fault']}"
              + (f" → {sat_cell(r)} jobs/s" if r.get("saturation") else "") for r in ok]  # fmt: skip
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

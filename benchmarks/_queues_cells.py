"""One cell of the queue shoot-out (bench_queues.py): a library's example, its settings and its fault, run as one
`offload-bench run`; and the table's rows that cell gives, every figure read from its summary.json."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _queues_table import saturation_of_folder

# what each library records of a job's start: without it, no queue wait (the tracker leaves it empty)
NO_START = "n/a — {lib} keeps no start time"


@dataclass
class Cell:
    """One `offload-bench run`: a library's example (or the sample service), one settings, one fault."""

    lib: str
    settings: str  # "defaults", "at-least-once", or "example's" (no settings variable)
    fault: str  # "" or the --fault value
    modes: list[str]
    target: str | None  # None: the built-in sample service
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    saturation: tuple[float, float] | None = None  # (rate/s, load s): a saturation cell, not the common load
    skip: str | None = None  # why this cell is not run (the library cannot give its figure)

    @property
    def name(self) -> str:
        kind = "saturation" if self.saturation or self.skip else (self.fault or "plain")
        return f"{self.lib}-{self.settings.replace(' ', '_').replace(chr(39), '')}-{kind}"


def _pct(block: dict[str, Any] | None, key: str) -> float | None:
    if not block:
        return None
    value = block.get(key)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def rows_of(cell: Cell, rc: int, run: Path | None) -> list[dict[str, Any]]:
    """The table's rows of one cell (one per mode), every figure from its summary.json; None = cannot give."""
    fault_label = cell.fault or "none"
    if cell.saturation:
        fault_label = f"none (saturation: {cell.saturation[0]:g}/s for {cell.saturation[1]:g} s)"
    base = {"library": cell.lib, "settings": cell.settings, "fault": fault_label, "exit": rc}
    if cell.skip:
        return [{**base, "fault": "none (saturation)", "mode": m, "run": None, "requests": None,
                 "saturation": {"jobs_per_s": None, "note": cell.skip}} for m in cell.modes]  # fmt: skip
    if run is None:
        return [{**base, "mode": m, "run": None, "error": f"did not run (exit {rc})"} for m in cell.modes]
    summary = json.loads((run / "summary.json").read_text())
    faults = summary.get("reliability", {}).get("faults", [])
    out = []
    for mode in cell.modes:
        m = summary["modes"].get(mode, {})
        jobs = m.get("jobs") or {}
        tracker = summary["run"].get("modes", {}).get(mode, {}).get("tracker") or {}
        lib = "the sample service" if cell.lib == "sample" else cell.lib
        wait = _pct(jobs.get("queue_wait_ms"), "p50")
        fault = next((f for f in faults if f.get("mode", "offload") == mode), None)
        row = {
            **base,
            "mode": mode,
            "run": str(run),
            "requests": m.get("requests"),
            "enough_p99": (m.get("enough_samples") or {}).get("p99"),
            "api_p50_ms": _pct(m.get("latency_ms"), "p50"),
            "api_p99_ms": _pct(m.get("latency_ms"), "p99"),
            "queue_wait_p50_ms": wait,
            "queue_wait_note": None if wait is not None or not jobs else NO_START.format(lib=lib),
            "e2e_p95_ms": _pct(jobs.get("e2e_ms"), "p95"),
            "accepted": jobs.get("accepted"),
            "completed": jobs.get("completed"),
            "lost": jobs.get("lost"),
            "unknown": jobs.get("unknown"),
            "dead": jobs.get("dead_lettered"),
            "duplicates": jobs.get("duplicates"),
            "pending": jobs.get("pending"),
            "recovery_s": fault.get("recovery_s") if fault else None,
            "fault_detail": fault.get("jobs") if fault else None,
            "tracker_notes": tracker.get("notes", []),
            "saturation": saturation_of_folder(run, mode, lib) if cell.saturation else None,
            "io_ms": next(
                (a for a, b in zip(cell.args[1:], cell.args, strict=False) if b == "--io-ms"), None
            ),
        }
        out.append(row)
    return out

"""The gate's figures in the formats history trackers read without glue.

- github-action-benchmark's `customSmallerIsBetter` tool: a JSON list of {"name", "unit", "value", "range",
  "extra"} (range and extra are free text, shown beside the value).
- Bencher's metric format (BMF): {benchmark: {measure: {"value", "lower_value", "upper_value"}}}; a measure named
  by a new slug is created by Bencher on first upload.

One entry per mode x figure, every figure smaller-is-better. The value is what the gate judges: the median over
the candidate runs; the range (lower/upper) is the runs' min and max (none for a single run).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.judge.gate_inputs import MissingMetric, Summary, resolve_number

# (label, path under modes.<mode>, unit, scale): smaller is better for each; a figure missing from any
# candidate (a mode without jobs, a percentile without samples) is left out, never written as 0.
FIGURES: tuple[tuple[str, str, str, float], ...] = (
    ("latency p50", "latency_ms.p50", "ms", 1.0),
    ("latency p90", "latency_ms.p90", "ms", 1.0),
    ("latency p95", "latency_ms.p95", "ms", 1.0),
    ("latency p99", "latency_ms.p99", "ms", 1.0),
    ("error rate", "error_rate", "%", 100.0),
    ("job e2e p95", "jobs.e2e_ms.p95", "ms", 1.0),
)


@dataclass(frozen=True)
class Figure:
    """One mode's figure over the candidate runs."""

    mode: str
    label: str
    unit: str
    per_run: list[float]

    @property
    def value(self) -> float:
        """The median over the runs (what the gate judges)."""
        return float(statistics.median(self.per_run))

    @property
    def measure(self) -> str:
        """A Bencher measure slug carrying the unit: 'latency-p95-ms', 'error-rate-pct'."""
        unit = "pct" if self.unit == "%" else self.unit
        return f"{self.label.replace(' ', '-')}-{unit}"


def figures(candidates: list[Summary]) -> list[Figure]:
    """Every figure of FIGURES for every mode all candidates ran, in the first candidate's mode order."""
    modes = [m for m in candidates[0].model.modes if all(m in s.model.modes for s in candidates)]
    out: list[Figure] = []
    for mode in modes:
        for label, path, unit, scale in FIGURES:
            try:
                per_run = [resolve_number(s, f"modes.{mode}.{path}") * scale for s in candidates]
            except MissingMetric:
                continue
            out.append(Figure(mode, label, unit, per_run))
    return out


def benchmark_json(figs: list[Figure]) -> list[dict[str, Any]]:
    """github-action-benchmark's customSmallerIsBetter entries."""
    entries: list[dict[str, Any]] = []
    for f in figs:
        entry: dict[str, Any] = {"name": f"{f.mode} {f.label}", "unit": f.unit, "value": f.value}
        if len(f.per_run) > 1:
            entry["range"] = (
                f"{min(f.per_run):.4g} to {max(f.per_run):.4g} (min to max of {len(f.per_run)} runs)"
            )
        entry["extra"] = f"median of {len(f.per_run)} run(s): " + ", ".join(f"{v:.4g}" for v in f.per_run)
        entries.append(entry)
    return entries


def bmf(figs: list[Figure]) -> dict[str, dict[str, dict[str, float]]]:
    """Bencher metric format: benchmark = the mode, one measure per figure."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for f in figs:
        metric = {"value": f.value}
        if len(f.per_run) > 1:
            metric |= {"lower_value": min(f.per_run), "upper_value": max(f.per_run)}
        out.setdefault(f.mode, {})[f.measure] = metric
    return out


def write_trackers(
    candidates: list[Summary], benchmark_file: Path | None, bmf_file: Path | None
) -> list[Path]:
    """Write the files asked for; the paths written."""
    figs = figures(candidates)
    written: list[Path] = []
    for path, data in ((benchmark_file, benchmark_json(figs)), (bmf_file, bmf(figs))):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
            written.append(path)
    return written

"""Reading what the gate and compare judge: summary.json files of runs and of the committed baseline."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runfolder.run_json import RunJson
from runfolder.schema import RUN_SCHEMA_VERSION, SUMMARY_FILE
from runfolder.summary import Summary as SummaryModel
from runfolder.summary import SummaryError, read_summary, typed_value

BASELINE_META_FILE = "baseline.json"
# Baseline folders hold copies named <run_id>.summary.json (see bench/baseline.py).
BASELINE_SUMMARY_GLOB = "*.summary.json"
# The load parameters that must match before two runs' figures may be compared (run.json "load" keys).
LOAD_KEYS = ("model", "users", "arrival_rate", "duration_s", "shape", "processes")


class GateInputError(Exception):
    """A candidate or baseline that cannot be read or compared (one-line message; exit 2)."""


class MissingMetric(KeyError):
    """A metric path that does not resolve to a number in a summary."""


@dataclass(frozen=True)
class Summary:
    """One run's summary.json (the typed model) and where it came from."""

    path: Path
    model: SummaryModel

    @property
    def run(self) -> RunJson:
        """The embedded run.json content."""
        return self.model.run

    @property
    def run_id(self) -> str:
        """The run id, or the file's folder name when the summary does not say."""
        return str(self.run.run_id or self.path.parent.name)


def load_summary(path: Path) -> Summary:
    """Read and validate a run folder's summary.json (or a summary.json path)."""
    if not path.exists():
        raise GateInputError(f"no summary at {path} (no such run folder or file)")
    file = path / SUMMARY_FILE if path.is_dir() else path
    if not file.exists():
        raise GateInputError(f"no summary at {file} (run `offload-bench report {path}` first)")
    try:
        return Summary(file, read_summary(file))
    except SummaryError as exc:
        raise GateInputError(str(exc)) from None


def load_summaries(paths: list[Path]) -> list[Summary]:
    """Read several candidates; the same file named twice (e.g. via a symlink) counts once."""
    seen: set[Path] = set()
    out: list[Summary] = []
    for path in paths:
        summary = load_summary(path)
        if summary.path.resolve() not in seen:
            seen.add(summary.path.resolve())
            out.append(summary)
    return out


def baseline_files(folder: Path) -> list[Path]:
    """The summary files of a baseline folder: *.summary.json, summary.json, */summary.json."""
    files = sorted(folder.glob(BASELINE_SUMMARY_GLOB)) + sorted(folder.glob(SUMMARY_FILE))
    return files + sorted(folder.glob(f"*/{SUMMARY_FILE}"))


def load_baseline(folder: Path) -> tuple[list[Summary], dict[str, Any]]:
    """Read a baseline folder: its summaries and its baseline.json metadata ({} when absent)."""
    if not folder.is_dir():
        raise GateInputError(
            f"baseline folder {folder} does not exist (create it: offload-bench baseline update RUN_DIR...)"
        )
    files = baseline_files(folder)
    if not files:
        raise GateInputError(
            f"no summary files in baseline {folder} (create them: offload-bench baseline update RUN_DIR...)"
        )
    meta: dict[str, Any] = {}
    meta_file = folder / BASELINE_META_FILE
    if meta_file.exists():
        try:
            loaded = json.loads(meta_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise GateInputError(f"cannot read {meta_file}: {exc}") from None
        meta = loaded if isinstance(loaded, dict) else {}
    return [load_summary(file) for file in files], meta


def resolve(summary: Summary, path: str) -> Any:
    """The value at a dotted path of the typed summary; MissingMetric when absent, null or not a declared field."""
    try:
        return typed_value(summary.model, path)
    except KeyError:
        raise MissingMetric(path) from None


def resolve_number(summary: Summary, path: str) -> float:
    """The number at a dotted path (booleans count as 1/0); MissingMetric when absent or not a number."""
    value = resolve(summary, path)
    if isinstance(value, bool | int | float):
        return float(value)
    raise MissingMetric(path)


def signature(summary: Summary) -> dict[str, Any]:
    """What must match between compared runs: schema versions, load parameters, work profile, workers."""
    run = summary.run
    sig: dict[str, Any] = {
        "schema_version": summary.model.schema_version,
        "run.schema_version": run.schema_version,
    }
    sig.update({f"load.{key}": getattr(run.load, key) for key in LOAD_KEYS})
    sig["work_profile"] = run.work_profile
    sig["workers"] = run.workers
    return sig


def mismatches(reference: Summary, others: list[Summary]) -> list[str]:
    """One line per parameter on which another run differs from the reference."""
    ref = signature(reference)
    lines: list[str] = []
    for other in others:
        sig = signature(other)
        for key, value in ref.items():
            if sig[key] != value:
                lines.append(f"{key}: {reference.run_id}={value!r} vs {other.run_id}={sig[key]!r}")
    return lines


def schema_problems(summaries: list[Summary]) -> list[str]:
    """Runs whose run.json was written by a schema version this tool does not read.

    (A summary of another version does not load at all: runfolder.summary refuses it with one line.)
    """
    return [
        f"{s.path}: run.json schema_version {s.run.schema_version!r}, this tool reads {RUN_SCHEMA_VERSION}"
        for s in summaries
        if s.run.schema_version != RUN_SCHEMA_VERSION
    ]

"""summary.json as a typed model: what analysis writes and the gate, compare and baseline read.

The committed JSON Schema (runfolder/summary.schema.json) is generated from these models
(`python -m runfolder.summary > runfolder/summary.schema.json`); a test keeps it current and validates real
summaries against it. Sections keep keys they do not declare (a newer analysis never breaks an older
reader), and every figure a partial run cannot have is optional: null means "not measured", never 0.
Version: SUMMARY_SCHEMA_VERSION in runfolder/schema.py; a breaking change bumps it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from runfolder.run_json import Open, RunJson
from runfolder.schema import SUMMARY_FILE, SUMMARY_SCHEMA_VERSION

SCHEMA_FILE = Path(__file__).with_name("summary.schema.json")


class Latency(Open):
    """Percentiles of a latency, ms (observed values; null when no samples)."""

    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    p999: float | None = None
    max: float | None = None
    mean: float | None = None


class Target(Open):
    """The headline verdict of a mode against the thresholds."""

    percentile: str | None = None
    verdict: str | None = None
    verdicts: dict[str, str | None] = Field(default_factory=dict)
    apdex: float | None = None
    fast_ms: float | None = None
    slow_ms: float | None = None
    satisfied_ms: float | None = None
    tolerating_ms: float | None = None


class Windows(Open):
    """Per-window request counts and percentiles (the gate's noise check reads these)."""

    window_s: float | None = None
    start_ts: list[float] = Field(default_factory=list)
    requests: list[int] = Field(default_factory=list)
    p50: list[float | None] = Field(default_factory=list)
    p95: list[float | None] = Field(default_factory=list)
    p99: list[float | None] = Field(default_factory=list)


class Jobs(Open):
    """The job side of an offload mode: reconciled fates, waits, backlog."""

    accepted: int | None = None
    completed: int | None = None
    retried: int | None = None
    dead_lettered: int | None = None
    redriven: int | None = None
    pending: int | None = None
    unknown: int | None = None  # fate the tracker could not learn: neither done nor lost
    lost: int | None = None
    lost_ids_sample: list[str] = Field(default_factory=list)
    duplicates: int | None = None
    unaccepted_records: int | None = None
    duplicate_records: int | None = None
    queue_wait_ms: Latency | None = None
    e2e_ms: Latency | None = None
    e2e_samples: int | None = None
    queue_depth_max: float | None = None
    backlog_end: float | None = None
    drain_s: float | None = None
    backlog_slope_per_s: float | None = None
    backlog_last: float | None = None
    # jobs the workers retried or left to their claim's expiry because their own loop was late (their logs):
    # {retried, abandoned, finish_retries}; null when the workers write no such lines
    self_inflicted: dict[str, int] | None = None


class WorkerLag(Open):
    """One worker process's event-loop lag over a mode (its "loop lag" log lines), ms."""

    worker: str
    ticks: int | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    bound_ms: float | None = None
    adaptive: bool | None = None
    limit_low: int | None = None
    limit_high: int | None = None


class LoadGenerator(Open):
    """What the load processes did: CPU, scheduled/sent/late/dropped arrivals."""

    processes: int | None = None
    cpu_percent_mean: float | None = None
    cpu_percent_busiest: float | None = None
    cpu_percent_max: float | None = None
    scheduled: int | None = None
    sent: int | None = None
    late: int | None = None
    dropped: int | None = None


class ModeSummary(Open):
    """One mode's figures."""

    partial: bool = False
    requests: int = 0
    failures: int = 0
    failures_by_kind: dict[str, int] = Field(default_factory=dict)
    error_rate: float | None = None
    rps: float | None = None
    duration_s: float | None = None
    model: str | None = None
    latency_ms: Latency = Field(default_factory=Latency)
    latency_uncorrected_ms: Latency | None = None
    latency_basis: str | None = None
    send_lateness_ms: Latency | None = None
    enough_samples: dict[str, bool] = Field(default_factory=dict)
    min_samples: dict[str, int] = Field(default_factory=dict)
    target: Target = Field(default_factory=Target)
    windows: Windows = Field(default_factory=Windows)
    samples_total: int | None = None
    jobs: Jobs | None = None
    workers: list[WorkerLag] | None = None  # loop lag per worker process (null: the workers log none)
    load_generator: LoadGenerator | None = None


class Comparison(Open):
    """Mode against mode: API speed-up, waiting for the work, the cost of enqueueing over noop."""

    api_speedup: dict[str, float | None] = Field(default_factory=dict)
    work_wait_ms: dict[str, dict[str, float | None]] = Field(default_factory=dict)
    offload_over_noop_ms: dict[str, float | None] = Field(default_factory=dict)


class Reliability(Open):
    """What each injected fault did (analysis/reliability.py)."""

    faults: list[dict[str, Any]] = Field(default_factory=list)
    errors_outside_faults: Any = None
    settle_s: float | None = None
    baseline_s: float | None = None


class Validity(Open):
    """Whether the run measured what it claims (load generator not saturated, enough samples, ...)."""

    valid: bool
    notes: list[str] = Field(default_factory=list)
    info: list[str] = Field(default_factory=list)


class Summary(Open):
    """summary.json."""

    schema_version: Literal[1]
    run: RunJson
    warmup_s: float | None = None
    thresholds: dict[str, Any] = Field(default_factory=dict)
    percentile_method: str | None = None
    modes: dict[str, ModeSummary]
    comparison: Comparison = Field(default_factory=Comparison)
    reliability: Reliability = Field(default_factory=Reliability)
    validity: Validity


assert SUMMARY_SCHEMA_VERSION == 1, "update Summary.schema_version with the version"


class SummaryError(ValueError):
    """A summary.json that cannot be read or does not fit the model; one line for people."""


def parse_summary(data: Any, where: str = SUMMARY_FILE) -> Summary:
    """The typed summary of already-parsed JSON; SummaryError naming the first bad field."""
    if isinstance(data, dict) and data.get("schema_version") != SUMMARY_SCHEMA_VERSION:
        raise SummaryError(
            f"{where}: summary schema_version {data.get('schema_version')!r}, this tool reads "
            f"{SUMMARY_SCHEMA_VERSION}"
        )
    try:
        return Summary.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "summary"
        raise SummaryError(f"{where} is not a summary.json ({loc}: {err['msg']})") from None


def read_summary(path: Path) -> Summary:
    """Read and validate a summary.json file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SummaryError(f"cannot read {path}: {exc}") from None
    return parse_summary(data, str(path))


def typed_value(model: BaseModel, path: str) -> Any:
    """The value at a dotted path that walks only declared fields (dict keys and list indexes below them).

    KeyError(path) when a step is not a declared field, absent or null: a rule cannot read an undeclared key.
    """
    node: Any = model
    for part in path.split("."):
        if isinstance(node, BaseModel) and part in type(node).model_fields:
            node = getattr(node, part)
        elif isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise KeyError(path)
    if node is None:
        raise KeyError(path)
    return node


def json_schema() -> dict[str, Any]:
    """The JSON Schema of summary.json (what runfolder/summary.schema.json holds)."""
    schema = Summary.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "offload-bench/summary.schema.json"
    return schema


def schema_text() -> str:
    """The committed file's exact text."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(schema_text())

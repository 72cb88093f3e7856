"""The run folder: the data contract between loadtests/, bench/ and analysis/ (layout, columns, versions).

A run is a folder, ``reports/runs/<run-id>/``, holding everything needed to rebuild its report offline::

    run.json                      run metadata (RUN_SCHEMA_VERSION), written first, updated at the end
    samples/<mode>-<proc>.csv     raw request samples, one file per load process (SampleRow)
    loadgen/<mode>-<proc>.json    per load process: dropped/late arrivals, CPU samples (LOADGEN_KEYS)
    queue/<mode>.csv              queue depth about once a second during an offload run (QUEUE_COLUMNS)
    jobs/<mode>.jsonl             lifecycle records of the run's jobs, one JSON object a line (JOB_KEYS)
    faults.json                   injected faults, when any: a list of {name, ts, end_ts, detail}
    summary.json, report.md, report.html, plots/*.png    written by analysis

Timestamps are Unix epoch seconds (float) unless the name says ``_ms``; latencies are milliseconds.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Annotated, Final, NamedTuple, get_type_hints

RUN_SCHEMA_VERSION: Final = 1
SUMMARY_SCHEMA_VERSION: Final = 1

MODES: Final = ("noop", "sync", "offload")

RUN_FILE: Final = "run.json"
SAMPLES_DIR: Final = "samples"
LOADGEN_DIR: Final = "loadgen"
QUEUE_DIR: Final = "queue"
JOBS_DIR: Final = "jobs"
FAULTS_FILE: Final = "faults.json"
SUMMARY_FILE: Final = "summary.json"


# Raw samples: CSV with exactly this header, one row per request, streamed as requests complete.
# One definition of the row: field order is the CSV column order, the annotation is the Python type the
# writer puts in, the metadata the pandas dtype a reader gets (category for repeated labels: compact, fast).
class SampleRow(NamedTuple):
    """One request's sample (samples/<mode>-<proc>.csv)."""

    # when the request should have started (open model: its schedule; closed: = start_ts)
    intended_ts: Annotated[float, "float64"]
    # when it actually started
    start_ts: Annotated[float, "float64"]
    # from the actual start to the end of the response (what Locust reports, unrounded)
    latency_ms: Annotated[float, "float64"]
    # from the intended start: includes time spent waiting to be sent (no coordinated omission)
    latency_corrected_ms: Annotated[float, "float64"]
    # noop | sync | offload
    mode: Annotated[str, "category"]
    # request name (templated path), e.g. "POST /offload/sources"
    name: Annotated[str, "category"]
    # HTTP status code, 0 when no response (connection error, timeout)
    status: Annotated[int, "int32"]
    # 1 when Locust counted a success, 0 when a failure (incl. semantic failures)
    ok: Annotated[int, "int8"]
    # short error text, empty when ok
    error: Annotated[str, "category"]
    # response body size
    bytes: Annotated[int, "int64"]
    # offload: the job id from the 202 body; empty otherwise
    job_id: Annotated[str, "object"]
    # the created source id when known; empty otherwise
    source_id: Annotated[str, "object"]
    # closed | open
    model: Annotated[str, "category"]
    # id of the load process that sent it
    proc: Annotated[str, "category"]


SAMPLE_COLUMNS: Final = SampleRow._fields


@functools.cache
def _sample_types() -> tuple[tuple[str, type], ...]:
    hints = get_type_hints(SampleRow, include_extras=True)
    return tuple((name, hints[name].__origin__) for name in SAMPLE_COLUMNS)


def sample_from_csv(record: Mapping[str, str]) -> SampleRow:
    """One sample from a CSV record (header -> text), each value as the row's type; ValueError/KeyError if bad."""
    return SampleRow(**{name: kind(record[name]) for name, kind in _sample_types()})


def sample_dtypes(columns: Iterable[str] = SAMPLE_COLUMNS) -> dict[str, str]:
    """The pandas dtype of each named sample column (for `pd.read_csv(dtype=..., usecols=...)`)."""
    hints = get_type_hints(SampleRow, include_extras=True)
    return {name: hints[name].__metadata__[0] for name in columns}


# fmt: off
# loadgen/<mode>-<proc>.json keys.
LOADGEN_KEYS: Final = (
    "proc",             # load process id (same as samples' proc)
    "model",            # closed | open
    "scheduled",        # open model: arrivals scheduled
    "sent",             # requests started
    "late",             # open model: sent later than scheduled by more than late_threshold_ms
    "dropped",          # open model: never sent (max in flight reached, or run ended first)
    "late_threshold_ms",
    "cpu_percent",      # list of [ts, percent of one core] samples of this load process
)

# queue/<mode>.csv header.
QUEUE_COLUMNS: Final = (
    "ts",
    "ready",         # runnable now: in arq:queue with a score <= now, not in progress
    "deferred",      # in arq:queue with a future score (retry back-off or deferred), not in progress
    "in_progress",   # arq:in-progress:* keys
    "dlq",           # records parked in our dead-letter queue
    "completed",     # jobs finished successfully so far (counter)
)

# jobs/<mode>.jsonl: one object per job id that the API accepted during the run.
JOB_KEYS: Final = (
    "job_id",
    "source_id",
    "enqueued_ts",   # when the API accepted it (first enqueue)
    "state",         # pending | running | done | dead | missing (no record found: a lost job unless explained)
    "attempts",      # list of {"try": int, "start_ts": float, "end_ts": float | null, "outcome": str | null,
                     #          "error": str | null}; outcome in success | retry | dead | cancelled | null (never ended)
    "done_ts",       # when it finished successfully, else null
    "dead_ts",       # when it was parked in the DLQ, else null
    "redrives",      # how many times it was re-driven from the DLQ
    "executions",    # attempts started (counts re-executions after a crash)
)

# fmt: on

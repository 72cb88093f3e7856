"""The run folder: the data contract between loadtests/, bench/ and analysis/.

A run is a folder, ``reports/runs/<run-id>/``, holding everything needed to rebuild its report offline::

    run.json                      run metadata (RUN_SCHEMA_VERSION), written first, updated at the end
    samples/<mode>-<proc>.csv     raw request samples, one file per load process (SAMPLE_COLUMNS)
    loadgen/<mode>-<proc>.json    per load process: dropped/late arrivals, CPU samples (LOADGEN_KEYS)
    queue/<mode>.csv              queue depth about once a second during an offload run (QUEUE_COLUMNS)
    jobs/<mode>.jsonl             lifecycle records of the run's jobs, one JSON object a line (JOB_KEYS)
    faults.json                   injected faults, when any (FAULT_KEYS)
    summary.json, report.md, report.html, plots/*.png    written by analysis

Timestamps are Unix epoch seconds (float) unless the name says ``_ms``; latencies are milliseconds.
"""

from __future__ import annotations

from typing import Final

RUN_SCHEMA_VERSION: Final = 1
SAMPLE_SCHEMA_VERSION: Final = 1
SUMMARY_SCHEMA_VERSION: Final = 1

MODES: Final = ("noop", "sync", "offload")

RUN_FILE: Final = "run.json"
SAMPLES_DIR: Final = "samples"
LOADGEN_DIR: Final = "loadgen"
QUEUE_DIR: Final = "queue"
JOBS_DIR: Final = "jobs"
FAULTS_FILE: Final = "faults.json"
SUMMARY_FILE: Final = "summary.json"

# fmt: off
# Raw samples: CSV with exactly this header, one row per request, streamed as requests complete.
SAMPLE_COLUMNS: Final = (
    "intended_ts",           # when the request should have started (open model: its schedule; closed: = start_ts)
    "start_ts",              # when it actually started
    "latency_ms",            # from the actual start to the end of the response (what Locust reports, unrounded)
    "latency_corrected_ms",  # from the intended start: includes time spent waiting to be sent (no coordinated omission)
    "mode",                  # noop | sync | offload
    "name",                  # request name (templated path), e.g. "POST /offload/sources"
    "status",                # HTTP status code, 0 when no response (connection error, timeout)
    "ok",                    # 1 when Locust counted a success, 0 when a failure (incl. semantic failures)
    "error",                 # short error text, empty when ok
    "bytes",                 # response body size
    "job_id",                # offload: the job id from the 202 body; empty otherwise
    "source_id",             # the created source id when known; empty otherwise
    "model",                 # closed | open
    "proc",                  # id of the load process that sent it
)

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

FAULT_KEYS: Final = ("name", "ts", "end_ts", "detail")
# fmt: on

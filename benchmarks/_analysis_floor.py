"""The analysis benchmark's floor: what reading a run folder's columns and its percentiles cost at the least.

    python benchmarks/_analysis_floor.py RUN_DIR

Reads the sample columns the report reads (analysis.load.SAMPLE_READ_COLUMNS, the same Arrow types) with
pyarrow's CSV reader, the job records' fields the report's job table is built from (analysis.load
JOB_TABLE_COLUMNS: state, times, the first attempt's start, redrives, executions) with pyarrow's JSON reader,
and computes with numpy the report's latency percentiles (p50 p90 p95 p99 p99.9, max, mean; inverted CDF) of
every mode, corrected and actual, after the warm-up, and the jobs' end-to-end and queue-wait percentiles. No plots, no HTML,
no verdicts: a floor, not a report. Imports only pyarrow and numpy (the interpreter's start counts, as it
does for the report's child process).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.json as pjson

PERCENTS = [50.0, 90.0, 95.0, 99.0, 99.9, 100.0]
TYPES = {
    "intended_ts": pa.float64(), "start_ts": pa.float64(), "latency_ms": pa.float64(),
    "latency_corrected_ms": pa.float64(), "mode": pa.dictionary(pa.int32(), pa.string()),
    "status": pa.int16(), "ok": pa.int8(), "job_id": pa.string(), "model": pa.dictionary(pa.int32(), pa.string()),
}  # fmt: skip
ATTEMPT = pa.struct([("try", pa.int64()), ("start_ts", pa.float64()), ("end_ts", pa.float64()),
                     ("outcome", pa.string())])  # fmt: skip
JOB_FIELDS = {
    "job_id": pa.string(), "state": pa.string(), "enqueued_ts": pa.float64(), "done_ts": pa.float64(),
    "dead_ts": pa.float64(), "attempts": pa.list_(ATTEMPT), "redrives": pa.int64(), "executions": pa.int64(),
}  # fmt: skip


def main(run_dir: Path) -> dict[str, object]:
    """The percentiles of every mode and of the jobs' end-to-end time."""
    run = json.loads((run_dir / "run.json").read_text())
    warmup_s = float(run.get("load", {}).get("warmup_s", 0.0) or 0.0)
    opts = pcsv.ConvertOptions(include_columns=list(TYPES), column_types=TYPES, null_values=[""],
                               strings_can_be_null=True)  # fmt: skip
    out: dict[str, object] = {}
    for mode in run["modes"]:
        tables = [
            pcsv.read_csv(p, convert_options=opts)
            for p in sorted((run_dir / "samples").glob(f"{mode}-*.csv"))
        ]
        t = pa.concat_tables(tables)
        intended = t.column("intended_ts").to_numpy()
        keep = (t.column("ok").to_numpy() == 1) & (intended >= np.nanmin(intended) + warmup_s)
        for col in ("latency_corrected_ms", "latency_ms"):
            values = t.column(col).to_numpy()[keep]
            qs = np.percentile(values, PERCENTS, method="inverted_cdf")
            out[f"{mode}.{col}"] = [*qs.tolist(), float(values.mean())]
    jobs = run_dir / "jobs" / "offload.jsonl"
    if jobs.exists():
        parse = pjson.ParseOptions(explicit_schema=pa.schema(JOB_FIELDS), unexpected_field_behavior="ignore")
        table = pjson.read_json(jobs, parse_options=parse)
        first = pc.struct_field(pc.list_element(table.column("attempts"), 0), "start_ts")
        table = table.append_column("first_start_ts", first)
        done = table.filter(pc.equal(table.column("state"), "done"))
        enq = done.column("enqueued_ts").to_numpy()
        e2e = (done.column("done_ts").to_numpy() - enq) * 1000
        wait = (done.column("first_start_ts").to_numpy(zero_copy_only=False) - enq) * 1000
        out["jobs.e2e_ms"] = np.percentile(e2e, PERCENTS, method="inverted_cdf").tolist()
        out["jobs.queue_wait_ms"] = np.percentile(wait, PERCENTS, method="inverted_cdf").tolist()
        out["jobs.counts"] = [float(pc.sum(table.column("executions")).as_py() or 0),
                              float(pc.sum(table.column("redrives")).as_py() or 0)]  # fmt: skip
    return out


if __name__ == "__main__":
    result = main(Path(sys.argv[1]))
    sys.stdout.write(f"{len(result)} percentile sets\n")

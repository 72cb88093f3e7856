"""Job lifecycle records (jobs/<mode>.jsonl) as flat Arrow tables: one row per job, and one per attempt.

The file is parsed in chunks of whole lines by Arrow's multi-threaded JSON reader and each chunk is flattened
at once, so the nested records of a 10M-request run (~1 GB of JSON) are never all in memory. A chunk Arrow
cannot parse (a bad line, a value of another type) is parsed line by line instead, keeping every good record.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pjson

from analysis.readers import parse_json_lines

CHUNK_BYTES = 16 << 20  # bounded memory (a 64 MB chunk cost ~100 MB more peak), still 16 parallel blocks
ATTEMPT_TYPE = pa.struct(
    [("try", pa.int64()), ("start_ts", pa.float64()), ("end_ts", pa.float64()), ("outcome", pa.string())]
)
# the JOB_KEYS analysis uses (source_id and the attempts' error texts are not read)
NESTED_SCHEMA = pa.schema(
    [
        ("job_id", pa.string()),
        ("state", pa.string()),
        ("enqueued_ts", pa.float64()),
        ("done_ts", pa.float64()),
        ("dead_ts", pa.float64()),
        ("redrives", pa.int64()),
        ("executions", pa.int64()),
        ("attempts", pa.list_(ATTEMPT_TYPE)),
    ]
)
JOBS_SCHEMA = pa.schema(
    [
        ("job_id", pa.string()),
        ("state", pa.string()),
        ("enqueued_ts", pa.float64()),
        ("done_ts", pa.float64()),
        ("dead_ts", pa.float64()),
        ("first_start_ts", pa.float64()),
        ("redrives", pa.int64()),
        ("executions", pa.int64()),
        ("retries", pa.int64()),
    ]
)
ATTEMPTS_SCHEMA = pa.schema(
    [
        ("job_id", pa.string()),
        ("try", pa.float64()),
        ("start_ts", pa.float64()),
        ("end_ts", pa.float64()),
        ("outcome", pa.string()),
    ]
)


def _num(value: Any, kind: type[float] | type[int]) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        return None
    return kind(value)


def _attempt(a: Any) -> dict[str, Any] | None:
    if not isinstance(a, dict):
        return None
    outcome = a.get("outcome")
    return {"try": _num(a.get("try"), int), "start_ts": _num(a.get("start_ts"), float),
            "end_ts": _num(a.get("end_ts"), float), "outcome": None if outcome is None else str(outcome)}  # fmt: skip


def nested(records: list[dict[str, Any]]) -> pa.Table:
    """Parsed job records as a NESTED_SCHEMA table; a value of the wrong type becomes null."""
    rows = []
    for rec in records:
        job_id, state, attempts = rec.get("job_id"), rec.get("state"), rec.get("attempts")
        rows.append({
            "job_id": None if job_id is None else str(job_id), "state": None if state is None else str(state),
            "enqueued_ts": _num(rec.get("enqueued_ts"), float), "done_ts": _num(rec.get("done_ts"), float),
            "dead_ts": _num(rec.get("dead_ts"), float), "redrives": _num(rec.get("redrives"), int),
            "executions": _num(rec.get("executions"), int),
            "attempts": [_attempt(a) for a in attempts] if isinstance(attempts, list) else None,
        })  # fmt: skip
    return pa.Table.from_pylist(rows, schema=NESTED_SCHEMA)


def _attempt_parts(table: pa.Table) -> tuple[np.ndarray, pa.StructArray, np.ndarray]:
    """(owner row of each attempt, the attempts, attempts per row) of a NESTED_SCHEMA table."""
    lists = table.column("attempts").combine_chunks()
    lens = pc.fill_null(pc.list_value_length(lists), 0).to_numpy().astype(np.int64)
    return np.repeat(np.arange(table.num_rows), lens), pc.list_flatten(lists), lens


def _floats(values: Any) -> np.ndarray:
    return np.asarray(pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False), dtype=float)


def flat_jobs(table: pa.Table) -> pa.Table:
    """One JOBS_SCHEMA row per record: first attempt start, retry attempts counted, executions defaulted to
    the attempts recorded, redrives to 0, state to "missing"."""
    n = table.num_rows
    owner, tries, lens = _attempt_parts(table)
    first_start = np.full(n, np.nan)
    start = _floats(tries.field("start_ts"))
    if owner.size:  # owner is sorted: fmin over each row's run of attempts (fmin skips NaN)
        heads = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        first_start[owner[heads]] = np.fmin.reduceat(start, heads)
    retry = pc.fill_null(pc.equal(tries.field("outcome"), "retry"), False).to_numpy(zero_copy_only=False)
    return pa.Table.from_arrays(
        [
            table.column("job_id"),
            pc.fill_null(table.column("state"), "missing"),
            table.column("enqueued_ts"),
            table.column("done_ts"),
            table.column("dead_ts"),
            pa.array(first_start, from_pandas=True),
            pc.fill_null(table.column("redrives"), 0),
            pc.fill_null(table.column("executions"), pa.array(lens)),
            pa.array(np.bincount(owner, weights=retry, minlength=n).astype(np.int64)),
        ],
        schema=JOBS_SCHEMA,
    )


def flat_attempts(table: pa.Table) -> pa.Table:
    """One ATTEMPTS_SCHEMA row per attempt (an attempt that is not an object is none); outcome "" when none."""
    owner, tries, _ = _attempt_parts(table)
    flat = pa.Table.from_arrays(
        [
            table.column("job_id").take(pa.array(owner)),
            pc.cast(tries.field("try"), pa.float64()),
            tries.field("start_ts"),
            tries.field("end_ts"),
            pc.fill_null(tries.field("outcome"), ""),
        ],
        schema=ATTEMPTS_SCHEMA,
    )
    return flat.filter(tries.is_valid())


def _chunks(path: Path, rel: str, notes: list[str]) -> Iterator[memoryview]:
    """Whole lines of path, about CHUNK_BYTES at a time (no copy of the chunk: the bytes after its last
    newline are read again with the next); a truncated last line is dropped with a note."""
    size, pos = CHUNK_BYTES, 0
    with path.open("rb") as fh:
        while block := fh.read(size):
            cut = block.rfind(b"\n") + 1
            if cut:
                yield memoryview(block)[:cut]
                pos, size = pos + cut, CHUNK_BYTES
            elif len(block) == size:  # no newline in a whole chunk: one long line, read more of it at once
                size *= 2
            else:  # the rest of the file holds no newline
                notes.append(f"{rel}: last line truncated (its writer stopped mid-line): dropped it")
                break
            fh.seek(pos)
    if pos == 0 and path.stat().st_size == 0:
        notes.append(f"{rel}: empty file")


def read_jobs(path: Path, rel: str, notes: list[str], attempts: bool = False) -> tuple[pa.Table, pa.Table | None]:  # fmt: skip
    """jobs/<mode>.jsonl as (JOBS_SCHEMA table, ATTEMPTS_SCHEMA table when attempts is asked for)."""
    opts = pjson.ParseOptions(explicit_schema=NESTED_SCHEMA, unexpected_field_behavior="ignore")
    jobs, tries, bad = [], [], 0
    for chunk in _chunks(path, rel, notes):
        try:
            table = pjson.read_json(pa.BufferReader(pa.py_buffer(chunk)), parse_options=opts)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            records, skipped = parse_json_lines(bytes(chunk))
            table, bad = nested(records), bad + skipped
        jobs.append(flat_jobs(table))
        if attempts:
            tries.append(flat_attempts(table))
        del table
    if bad:
        notes.append(f"{rel}: {bad} unreadable line(s) skipped")
    all_jobs = pa.concat_tables(jobs) if jobs else JOBS_SCHEMA.empty_table()
    all_tries = (pa.concat_tables(tries) if tries else ATTEMPTS_SCHEMA.empty_table()) if attempts else None
    return all_jobs, all_tries

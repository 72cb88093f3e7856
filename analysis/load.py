"""Read a run folder (runfolder/schema.py) into tables: tolerant of partial runs, strict about the schema.

Samples keep only the columns analysis uses, typed as runfolder.schema.sample_dtypes says (categoricals for
repeated labels, job ids as Arrow strings); files are read with analysis.readers (pyarrow, all cores).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis import jobrecords, readers
from analysis.readers import ReadError
from runfolder import rundir, schema
from runfolder.rundir import RunDirError

# Sample columns analysis reads (name, error, bytes, source_id and proc are never used: skipping them is
# faster and smaller); their types come from the schema's one definition of the row.
SAMPLE_READ_COLUMNS = (
    "intended_ts", "start_ts", "latency_ms", "latency_corrected_ms", "mode", "status", "ok", "job_id", "model",
)  # fmt: skip
SAMPLE_DTYPES: dict[str, str] = schema.sample_dtypes(SAMPLE_READ_COLUMNS)
QUEUE_DTYPES: dict[str, str] = dict.fromkeys(schema.QUEUE_COLUMNS, "float64")
JOB_TABLE_COLUMNS = (
    "job_id", "state", "enqueued_ts", "done_ts", "dead_ts", "first_start_ts", "redrives", "executions",
    "retries",
)  # fmt: skip


class RunDataError(Exception):
    """The run folder cannot be analysed at all; the message is one line for a person."""


@dataclass
class RunData:
    """Everything read from one run folder; `notes` lists the data problems found on the way."""

    run_dir: Path
    run: dict[str, Any]
    samples: pd.DataFrame
    loadgen: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    queue: dict[str, pd.DataFrame] = field(default_factory=dict)
    jobs: dict[str, pd.DataFrame] = field(default_factory=dict)
    attempts: dict[str, pd.DataFrame] = field(default_factory=dict)  # per attempt; read only for fault runs
    faults: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    partial_modes: set[str] = field(default_factory=set)

    @property
    def modes(self) -> list[str]:
        """Modes named in run.json or found in samples: the schema's order first, then any others."""
        found = set(self.run.get("modes") or {}) | set(self.samples["mode"].cat.categories)
        return [m for m in schema.MODES if m in found] + sorted(found - set(schema.MODES))

    def by_mode(self) -> dict[str, pd.DataFrame]:
        """Each mode's rows: slices (no copy) when every mode's rows are contiguous, as one file per mode is."""
        codes = self.samples["mode"].cat.codes.to_numpy()
        cats = self.samples["mode"].cat.categories
        if codes.size == 0:
            return {}
        edges = np.flatnonzero(codes[1:] != codes[:-1]) + 1
        starts, ends = np.r_[0, edges], np.r_[edges, codes.size]
        if len(set(codes[starts].tolist())) == starts.size:
            return {str(cats[codes[a]]): self.samples.iloc[a:b] for a, b in zip(starts, ends, strict=True)
                    if codes[a] >= 0}  # fmt: skip
        return {str(m): df for m, df in self.samples.groupby("mode", observed=True)}


def _empty_samples() -> pd.DataFrame:
    empty: pd.DataFrame = readers.arrow_schema(SAMPLE_DTYPES).empty_table().to_pandas()
    return empty


def read_run_json(run_dir: Path) -> dict[str, Any]:
    """Read and check run.json; raise RunDataError when missing, unreadable or of another schema version."""
    path = run_dir / schema.RUN_FILE
    try:
        run = rundir.read_run_json(run_dir)
    except RunDirError as exc:
        raise RunDataError(f"{exc} (hint: pass a run folder, e.g. reports/latest)") from None
    version = run.get("schema_version")
    if version != schema.RUN_SCHEMA_VERSION:
        raise RunDataError(
            f"{path}: schema_version {version!r}, this analysis reads {schema.RUN_SCHEMA_VERSION} "
            "(hint: rebuild the report with the offload-bench version that recorded the run)"
        )
    return run


def _read_table(path: Path, rel: str, required: tuple[str, ...], dtypes: dict[str, str], notes: list[str]) -> pa.Table | None:  # fmt: skip
    source = readers.whole_lines(path, rel, notes)
    if source is None:
        return None
    try:
        return readers.read_csv(source, rel, required, dtypes)
    except ReadError as exc:
        raise RunDataError(str(exc)) from None


def _read_samples(run_dir: Path, notes: list[str]) -> pd.DataFrame:
    tables = []
    for path in sorted((run_dir / schema.SAMPLES_DIR).glob("*.csv")):
        table = _read_table(path, f"samples/{path.name}", schema.SAMPLE_COLUMNS, SAMPLE_DTYPES, notes)
        if table is not None and table.num_rows:
            tables.append(table)
    return readers.concat_frame(tables) if tables else _empty_samples()


def _read_queue(path: Path, notes: list[str]) -> pd.DataFrame | None:
    table = _read_table(path, f"queue/{path.name}", schema.QUEUE_COLUMNS, QUEUE_DTYPES, notes)
    return None if table is None else table.to_pandas().sort_values("ts", ignore_index=True)


def jobs_frame(table: pa.Table) -> pd.DataFrame:
    """A jobrecords.JOBS_SCHEMA table as pandas (JOB_TABLE_COLUMNS; state categorical, job ids Arrow strings)."""
    frame: pd.DataFrame = table.to_pandas(self_destruct=True, split_blocks=True)
    frame["state"] = frame["state"].astype("category")
    return frame


def jobs_table(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Flatten job lifecycle records (runfolder.schema.JOB_KEYS) into one row per record."""
    return jobs_frame(jobrecords.flat_jobs(jobrecords.nested(records)))


def attempts_table(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per attempt: job_id, try, start_ts, end_ts (NaN: never ended), outcome ("" when none)."""
    frame: pd.DataFrame = jobrecords.flat_attempts(jobrecords.nested(records)).to_pandas()
    return frame


def _read_json(path: Path, rel: str, notes: list[str]) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        notes.append(f"{rel}: unreadable JSON, ignored ({str(exc).splitlines()[0]})")
        return None


def load_run(run_dir: Path) -> RunData:
    """Read a whole run folder; raise RunDataError only when nothing useful can be read."""
    if not run_dir.exists():
        raise RunDataError(
            f"run folder {run_dir} does not exist (hint: offload-bench run writes reports/latest)"
        )
    if not run_dir.is_dir():
        raise RunDataError(f"{run_dir} is not a folder (hint: pass the run folder, not a file in it)")
    run = read_run_json(run_dir)
    notes: list[str] = []
    samples = _read_samples(run_dir, notes)
    # the CSV parser's freed buffers back to the OS before the job records are parsed: ~400 MB less peak at 10M
    pa.default_memory_pool().release_unused()
    if samples.empty:
        raise RunDataError(f"no samples in {run_dir / schema.SAMPLES_DIR} (hint: did the load run at all?)")
    data = RunData(run_dir=run_dir, run=run, samples=samples, notes=notes)
    for path in sorted((run_dir / schema.LOADGEN_DIR).glob("*.json")):
        rec = _read_json(path, f"loadgen/{path.name}", notes)
        if isinstance(rec, dict):
            data.loadgen.setdefault(path.stem.split("-", 1)[0], []).append(rec)
    for path in sorted((run_dir / schema.QUEUE_DIR).glob("*.csv")):
        queue = _read_queue(path, notes)
        if queue is not None:
            data.queue[path.stem] = queue
    faults_path = run_dir / schema.FAULTS_FILE
    faults = _read_json(faults_path, schema.FAULTS_FILE, notes) if faults_path.is_file() else None
    data.faults = faults if isinstance(faults, list) else list(run.get("faults") or [])
    for path in sorted((run_dir / schema.JOBS_DIR).glob("*.jsonl")):
        table, tries = jobrecords.read_jobs(path, f"jobs/{path.name}", notes, attempts=bool(data.faults))
        data.jobs[path.stem] = jobs_frame(table)
        if tries is not None:
            data.attempts[path.stem] = tries.to_pandas()
    pa.default_memory_pool().release_unused()  # hand Arrow's parse buffers back to the OS before the stats
    counts = samples["mode"].value_counts()
    for mode in data.modes:
        if counts.get(mode, 0) == 0:
            notes.append(f"mode {mode}: no samples (partial run)")
            data.partial_modes.add(mode)
    return data

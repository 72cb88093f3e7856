"""Raw sample capture: one CSV row per request (runfolder.schema.SAMPLE_COLUMNS), streamed in batches.

Rows are built in Locust's `request` event listener, buffered briefly and then written to the process's
own file (local runs) or sent to the master over Locust's message channel (distributed runs), which writes
samples/<mode>-<proc>.csv per load process. Nothing is held beyond one batch.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Final

from runfolder.schema import SAMPLE_COLUMNS, SAMPLES_DIR

Row = list[Any]
BATCH_ROWS: Final = 2_000
SAMPLES_MESSAGE: Final = "ob_samples"
ERROR_CHARS: Final = 200
_JOB_ID: Final = SAMPLE_COLUMNS.index("job_id")


def error_text(exception: BaseException | None) -> str:
    """A short, one-line error for the sample's error column."""
    if exception is None:
        return ""
    text = str(exception) or type(exception).__name__
    return " ".join(text.split())[:ERROR_CHARS]


def make_row(meta: dict[str, Any], mode: str, model: str, proc: str) -> Row:
    """The SAMPLE_COLUMNS row of one `request` event's keyword arguments."""
    start_ts: float = meta["start_time"]
    latency_ms: float = meta["response_time"]
    context = meta.get("context") or {}
    intended = context.get("intended_ts")
    intended_ts: float = start_ts if intended is None else intended
    exception = meta.get("exception")
    response = meta.get("response")
    status = getattr(response, "status_code", 0) or 0
    return [
        intended_ts,
        start_ts,
        round(latency_ms, 3),
        round((start_ts - intended_ts) * 1000.0 + latency_ms, 3),
        mode,
        f"{meta['request_type']} {meta['name']}",
        status,
        0 if exception else 1,
        error_text(exception),
        meta.get("response_length") or 0,
        context.get("job_id", ""),
        context.get("source_id", ""),
        model,
        proc,
    ]


class SampleBuffer:
    """Collects rows and hands them to sink in batches (when full, or when flush() is called)."""

    def __init__(self, sink: Callable[[list[Row]], None], batch_rows: int = BATCH_ROWS) -> None:
        self._sink = sink
        self._batch_rows = batch_rows
        self._rows: list[Row] = []
        self.count = 0

    def add(self, row: Row) -> None:
        """Buffer one row; hand the batch on when full."""
        self._rows.append(row)
        self.count += 1
        if len(self._rows) >= self._batch_rows:
            self.flush()

    def flush(self) -> None:
        """Hand every buffered row to the sink now."""
        if self._rows:
            rows, self._rows = self._rows, []
            self._sink(rows)


class SampleFile:
    """samples/<mode>-<proc>.csv: header first, rows appended and flushed batch by batch."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fh: IO[str] = path.open("w", newline="")
        self._writer = csv.writer(self._fh)
        self._writer.writerow(SAMPLE_COLUMNS)
        self.count = 0

    def write(self, rows: list[Row]) -> None:
        """Append rows and push them to the OS (a crash loses at most the current batch)."""
        self._writer.writerows(rows)
        self._fh.flush()
        self.count += len(rows)

    def close(self) -> None:
        """Flush and close."""
        if not self._fh.closed:
            self._fh.close()


class SampleFiles:
    """The run folder's sample files, one per (mode, load process), opened on first use."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._files: dict[tuple[str, str], SampleFile] = {}

    def write(self, mode: str, proc: str, rows: list[Row]) -> None:
        """Append rows of one load process."""
        key = (mode, proc)
        sample_file = self._files.get(key)
        if sample_file is None:
            sample_file = SampleFile(self.run_dir / SAMPLES_DIR / f"{mode}-{proc}.csv")
            self._files[key] = sample_file
        sample_file.write(rows)

    def count(self, mode: str) -> int:
        """Rows written for mode, over every load process."""
        return sum(f.count for (m, _), f in self._files.items() if m == mode)

    def paths(self, mode: str) -> list[Path]:
        """The sample files of mode."""
        return [f.path for (m, _), f in self._files.items() if m == mode]

    def close(self) -> None:
        """Close every file."""
        for sample_file in self._files.values():
            sample_file.close()


def job_ids(paths: list[Path]) -> Iterator[str]:
    """Job ids of the accepted requests in sample files, streamed (never the whole file in memory)."""
    for path in paths:
        with path.open(newline="") as fh:
            reader = csv.reader(fh)
            next(reader, None)
            for row in reader:
                if len(row) > _JOB_ID and row[_JOB_ID]:
                    yield row[_JOB_ID]

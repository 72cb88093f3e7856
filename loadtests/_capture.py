"""Raw sample capture: one CSV row per request (runfolder.schema.SampleRow), streamed in batches.

The `request` listener only appends a raw tuple (< 1 us); rows are made and formatted as CSV text later, in
slices between which the load process keeps serving its greenlets, then written to the process's own file
(local runs) or sent to the master over Locust's message channel as text (distributed runs), which appends it
to samples/<mode>-<proc>.csv. Nothing is held beyond one flush interval.

Why not csv.writer: it cost ~8 us a row here (most of the ~10 us of Locust CPU capture cost per request); an
f-string of the row with fixed-point numbers costs ~2 us. Rows whose strings need CSV quoting (rare: error
texts, odd ids) go through csv.writer, so the file is exactly what csv.writer would write for text_row().
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Final

from runfolder.schema import SAMPLE_COLUMNS, SAMPLES_DIR, SampleRow

# start_time, response_time (ms), context, "<request_type> <name>", error text, status, response length
RawSample = tuple[float, float, dict[str, Any], str, str, int, int]
SAMPLES_MESSAGE: Final = "ob_samples_csv"  # {"mode", "proc", "rows": count, "csv": text}
ERROR_CHARS: Final = 200
SLICE_ROWS: Final = 100  # rows formatted between two yields to the load process's other greenlets (~0.3 ms)
_JOB_ID: Final = SAMPLE_COLUMNS.index("job_id")
_NEEDS_QUOTING: Final = re.compile(r'[",\r\n]').search


def error_text(exception: BaseException | None) -> str:
    """A short, one-line error for the sample's error column."""
    if exception is None:
        return ""
    text = str(exception) or type(exception).__name__
    return " ".join(text.split())[:ERROR_CHARS]


def make_row(raw: RawSample, mode: str, model: str, proc: str) -> SampleRow:
    """The sample row of one request's raw capture."""
    start_ts, latency_ms, context, name, error, status, length = raw
    intended = context.get("intended_ts")
    intended_ts: float = start_ts if intended is None else intended
    return SampleRow(
        intended_ts=intended_ts,
        start_ts=start_ts,
        latency_ms=latency_ms,
        latency_corrected_ms=(start_ts - intended_ts) * 1000.0 + latency_ms,
        mode=mode,
        name=name,
        status=status,
        ok=0 if error else 1,
        error=error,
        bytes=length,
        job_id=context.get("job_id", ""),
        source_id=context.get("source_id", ""),
        model=model,
        proc=proc,
    )


# the fast path below writes the columns in this order: a change of SampleRow must be made there too
_FAST_ORDER: Final = (
    "intended_ts", "start_ts", "latency_ms", "latency_corrected_ms", "mode", "name", "status", "ok", "error",
    "bytes", "job_id", "source_id", "model", "proc",
)  # fmt: skip
if SAMPLE_COLUMNS != _FAST_ORDER:  # pragma: no cover - a schema change must update RowFormatter
    raise RuntimeError("runfolder.schema.SampleRow changed: update loadtests/_capture.py RowFormatter")


def text_row(row: SampleRow) -> list[Any]:
    """A row with its floats written as the files hold them: epoch seconds to the microsecond, ms to 1 us."""
    return [
        f"{row.intended_ts:.6f}",
        f"{row.start_ts:.6f}",
        f"{row.latency_ms:.3f}",
        f"{row.latency_corrected_ms:.3f}",
        *row[4:],
    ]


class RowFormatter:
    """CSV text of sample rows: byte for byte what csv.writer writes for text_row(make_row(...)), ~4x cheaper."""

    def __init__(self, mode: str, model: str, proc: str) -> None:
        self.mode, self.model, self.proc = mode, model, proc
        self._constants_safe = not any(_NEEDS_QUOTING(c) for c in (mode, model, proc))
        self._safe_names: dict[str, bool] = {}

    def format(self, raws: list[RawSample]) -> str:
        """The CSV lines of raws (\\r\\n-terminated, as csv.writer writes them)."""
        out: list[str] = []
        add = out.append
        buf: io.StringIO | None = None
        slow: Any = None
        safe_names = self._safe_names
        # constant columns written in (escaped for %): safe_names guarantees they need no quoting
        row_format = "%.6f,%.6f,%.3f,%.3f," + self.mode.replace("%", "%%") + ",%s,%s,1,,%s,%s,%s,"
        row_format += f"{self.model},{self.proc}".replace("%", "%%") + "\r\n"
        for raw in raws:
            start_ts, latency_ms, context, name, error, status, length = raw
            job_id = context.get("job_id", "")
            source_id = context.get("source_id", "")
            safe = safe_names.get(name)
            if safe is None:
                safe = safe_names[name] = self._constants_safe and not _NEEDS_QUOTING(name)
            if (
                safe
                and not error
                and (not job_id or job_id.isalnum() or not _NEEDS_QUOTING(job_id))
                and (not source_id or source_id.isalnum() or not _NEEDS_QUOTING(source_id))
            ):
                intended = context.get("intended_ts")
                intended_ts = start_ts if intended is None else intended
                corrected = (start_ts - intended_ts) * 1000.0 + latency_ms
                # fixed-point numbers, one %-format per row: the cheapest way measured (repr() of rounded
                # floats and f-strings cost 20-40 % more)
                add(
                    row_format
                    % (intended_ts, start_ts, latency_ms, corrected, name, status, length, job_id, source_id)
                )
                continue
            if buf is None:
                buf = io.StringIO()
                slow = csv.writer(buf)
            slow.writerow(text_row(make_row(raw, self.mode, self.model, self.proc)))
            add(buf.getvalue())
            buf.seek(0)
            buf.truncate()
        return "".join(out)


class SampleBuffer:
    """Collects raw samples on the hot path; flush() formats them and hands CSV text to the sink in slices."""

    def __init__(
        self, sink: Callable[[str, int], None], formatter: RowFormatter, pause: Callable[[], None]
    ) -> None:
        self._sink = sink
        self._formatter = formatter
        self._pause = pause
        self.raws: list[RawSample] = []  # the request listener appends to it directly: its only work
        self.count = 0

    def flush(self, sliced: bool = True) -> None:
        """Format and hand on every buffered sample; sliced: pause() between slices of SLICE_ROWS rows.

        A slice leaves the buffer only once the sink has it, so a stop between slices loses nothing.
        """
        raws = self.raws
        while raws:
            chunk = raws[:SLICE_ROWS]
            self._sink(self._formatter.format(chunk), len(chunk))
            del raws[: len(chunk)]
            self.count += len(chunk)
            if sliced and raws:
                self._pause()


class SampleFile:
    """samples/<mode>-<proc>.csv: header first, CSV text appended and flushed batch by batch."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fh: IO[str] = path.open("w", newline="")
        csv.writer(self._fh).writerow(SAMPLE_COLUMNS)
        self.count = 0

    def write(self, text: str, rows: int) -> None:
        """Append rows' CSV text and push it to the OS (a crash loses at most the current batch)."""
        self._fh.write(text)
        self._fh.flush()
        self.count += rows

    def close(self) -> None:
        """Flush and close."""
        if not self._fh.closed:
            self._fh.close()


class SampleFiles:
    """The run folder's sample files, one per (mode, load process), opened on first use."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._files: dict[tuple[str, str], SampleFile] = {}

    def write(self, mode: str, proc: str, text: str, rows: int) -> None:
        """Append the CSV text of rows of one load process."""
        key = (mode, proc)
        sample_file = self._files.get(key)
        if sample_file is None:
            sample_file = SampleFile(self.run_dir / SAMPLES_DIR / f"{mode}-{proc}.csv")
            self._files[key] = sample_file
        sample_file.write(text, rows)

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

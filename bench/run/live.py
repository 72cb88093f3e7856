"""Live figures for the progress display, read from the run folder's streamed sample and queue files."""

from __future__ import annotations

import csv
import io
import math
import time
from collections import deque
from pathlib import Path

from runfolder.schema import QUEUE_DIR, SAMPLES_DIR, sample_from_csv


class _Tail:
    """Read only the complete new lines of a growing CSV file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.header: list[str] | None = None

    def new_rows(self) -> list[dict[str, str]]:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except OSError:
            return []
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        lines = chunk[: end + 1].decode(errors="replace").splitlines()
        if self.header is None and lines:
            self.header = next(csv.reader([lines.pop(0)]))
        return list(csv.DictReader(io.StringIO("\n".join(lines)), fieldnames=self.header))


class LiveSamples:
    """Rolling req/s, p95 and error count of one mode, from samples/<mode>-*.csv."""

    def __init__(self, run_dir: Path, mode: str, window_s: float = 5.0) -> None:
        self.dir = run_dir / SAMPLES_DIR
        self.mode = mode
        self.window_s = window_s
        self.tails: dict[Path, _Tail] = {}
        self.recent: deque[tuple[float, float]] = deque()
        self.total = 0
        self.errors = 0
        # the earliest request's start (epoch s): when the load began
        self.first_start_ts: float | None = None

    def poll(self) -> None:
        """Read what was written since the last poll."""
        for path in self.dir.glob(f"{self.mode}-*.csv"):
            tail = self.tails.setdefault(path, _Tail(path))
            for row in tail.new_rows():
                try:
                    sample = sample_from_csv(row)
                except (KeyError, TypeError, ValueError):
                    continue
                self.total += 1
                self.errors += sample.ok == 0
                if self.first_start_ts is None or sample.start_ts < self.first_start_ts:
                    self.first_start_ts = sample.start_ts
                end_ts = sample.start_ts + sample.latency_ms / 1000
                self.recent.append((end_ts, sample.latency_corrected_ms))
        horizon = time.time() - self.window_s
        while self.recent and self.recent[0][0] < horizon:
            self.recent.popleft()

    def rps(self) -> float:
        """Requests completed per second over the window."""
        return len(self.recent) / self.window_s

    def p95_ms(self) -> float | None:
        """p95 latency over the window (corrected from the intended start in the open model)."""
        if not self.recent:
            return None
        # numpy's percentile(..., method="higher") by hand: the same float index, rounded up. This module is
        # imported by every CLI command (through `run`'s), and numpy would add ~0.15 s to each start
        values = sorted(lat for _, lat in self.recent)
        return float(values[math.ceil(0.95 * (len(values) - 1))])

    def describe(self) -> str:
        """One status line."""
        self.poll()
        p95 = self.p95_ms()
        p95_text = f"{p95:,.0f} ms" if p95 is not None else "-"
        return f"{self.rps():6.1f} req/s  p95 {p95_text:>9}  errors {self.errors}  samples {self.total}"


class LiveQueue:
    """Latest queue depth of one mode, from queue/<mode>.csv."""

    def __init__(self, run_dir: Path, mode: str) -> None:
        self.tail = _Tail(run_dir / QUEUE_DIR / f"{mode}.csv")
        self.last: dict[str, str] = {}

    def poll(self) -> dict[str, str]:
        """The newest queue-depth row seen so far."""
        rows = self.tail.new_rows()
        if rows:
            self.last = rows[-1]
        return self.last

    def backlog(self) -> int | None:
        """ready + deferred + in progress, or None before the first sample."""
        row = self.poll()
        try:
            return int(row["ready"]) + int(row["deferred"]) + int(row["in_progress"])
        except (KeyError, ValueError):
            return None

"""A run's numbers while it runs, for the web UI's Offload tab: from the run folder's raw samples, read as they
grow (each refresh parses only the rows written since the last one), judged by analysis's own functions.

The percentiles are exact (analysis.stats: inverted CDF over every sample so far), not Locust's rounded buckets.
One refresh costs one np.partition over the run's latencies (~10 ms per million samples) and the parse of at most
READ_BYTES per file; it runs at most once per REFRESH_S whatever the number of browsers polling, and in a thread
of gevent's pool (loadtests/_webui.py).
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from analysis.config import Thresholds
from analysis.stats import latency_summary, lateness_summary, verdict
from runfolder.schema import SAMPLE_COLUMNS, SAMPLES_DIR

REFRESH_S: Final = 1.0
# A browser opened late in a long run has a backlog of rows to parse: one parse of a million rows held the GIL
# (pandas) for up to 75 ms, one of 4 MB up to 30 ms. Parses of READ_BYTES (~10k rows), at most PARSES per file and
# refresh, let the load's loop run between them; a backlog is caught up over a few refreshes.
READ_BYTES: Final = 1 << 20
PARSES: Final = 16
_USED: Final = ("intended_ts", "start_ts", "latency_ms", "latency_corrected_ms", "status", "ok", "job_id")


class SampleTail:
    """The complete rows appended to one sample file since the previous read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def read(self) -> pd.DataFrame | None:
        """New complete rows (a row still being written waits for the next read); None when there are none."""
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            chunk = fh.read(READ_BYTES)
        end = chunk.rfind(b"\n") + 1
        if end == 0:
            return None
        if self.offset == 0:  # the header line
            start = chunk.find(b"\n") + 1
            chunk, end = chunk[start:end], end
        else:
            chunk = chunk[:end]
        self.offset += end
        if not chunk:
            return None
        return pd.read_csv(
            io.BytesIO(chunk),
            header=None,
            names=list(SAMPLE_COLUMNS),
            usecols=list(_USED),
            dtype={"job_id": str, "status": np.int64, "ok": np.int64},
            keep_default_na=False,
        )


class LiveNumbers:
    """One run's headline numbers from the samples written so far (one mode, as a run of Locust has one)."""

    def __init__(
        self, run_dir: Path, mode: str, model: str, late_threshold_ms: float, th: Thresholds
    ) -> None:
        self.run_dir, self.mode, self.th = run_dir, mode, th
        self.open = model == "open"
        self.late_threshold_ms = late_threshold_ms
        self._tails: dict[Path, SampleTail] = {}
        self._latency: list[np.ndarray] = []
        self._lateness: list[np.ndarray] = []
        self.requests = self.failures = self.accepted = 0
        self._numbers: dict[str, Any] = {}
        self._at = 0.0

    def _read(self) -> None:
        for path in sorted((self.run_dir / SAMPLES_DIR).glob(f"{self.mode}-*.csv")):
            tail = self._tails.setdefault(path, SampleTail(path))
            for _ in range(PARSES):
                rows = tail.read()
                if rows is None:
                    break
                self._add(rows)

    def _add(self, rows: pd.DataFrame) -> None:
        # the headline latency is analysis's: from the intended start in the open model
        column = "latency_corrected_ms" if self.open else "latency_ms"
        self._latency.append(rows[column].to_numpy(dtype=float))
        if self.open:
            self._lateness.append((rows["start_ts"].to_numpy() - rows["intended_ts"].to_numpy()) * 1000.0)
        ok = rows["ok"].to_numpy() == 1
        self.requests += len(rows)
        self.failures += int(np.count_nonzero(~ok))
        accepted = (rows["job_id"].to_numpy() != "") & (rows["status"].to_numpy() // 100 == 2)
        self.accepted += int(np.count_nonzero(accepted))

    def numbers(self) -> dict[str, Any]:
        """requests, failures, error_rate, latency_ms (p50..max), verdict, send_lateness_ms, late, accepted."""
        now = time.monotonic()
        if self._numbers and now - self._at < REFRESH_S:
            return self._numbers
        self._at = now
        self._read()
        if len(self._latency) > 1:  # one array from here on: the next refresh concatenates only new rows
            self._latency = [np.concatenate(self._latency)]
            self._lateness = [np.concatenate(self._lateness)] if self._lateness else []
        latency = self._latency[0] if self._latency else np.zeros(0)
        summary = latency_summary(latency)
        lateness = self._lateness[0] if self._lateness else np.zeros(0)
        self._numbers = {
            "requests": self.requests,
            "failures": self.failures,
            "error_rate": self.failures / self.requests if self.requests else None,
            "latency_ms": summary,
            "verdict": verdict(summary[self.th.percentile], self.th),
            "enough_samples": self.requests >= self.th.min_samples(self.th.percentile),
            "send_lateness_ms": lateness_summary(lateness) if self.open else None,
            "late": int(np.count_nonzero(lateness > self.late_threshold_ms)) if self.open else None,
            "accepted": self.accepted,
        }
        return self._numbers

"""The capture's CPU cost per request, in one process: Locust's `request` event kwargs through our listener
and the row formatting, timed with timeit (no Locust run, so the shared cores' noise hardly matters).

Run in a child process per checkout (`python benchmarks/_capture_cost.py CHECKOUT`), so each imports its own
loadtests/; checkouts before the raw-tuple capture (make_row(meta, ...) + csv.writer) are timed their way.
"""

from __future__ import annotations

import csv
import inspect
import io
import sys
import timeit
from typing import Any

N = 5_000


class _Response:
    status_code = 202


META: dict[str, Any] = {
    "request_type": "POST",
    "name": "/offload/sources",
    "response_time": 1.2345678,
    "response_length": 80,
    "response": _Response(),
    "context": {"intended_ts": 1764694800.123456789, "source_id": "ab" * 16, "job_id": "cd" * 16},
    "exception": None,
    "start_time": 1764694800.1235123,
    "url": "http://127.0.0.1/offload/sources",
}


def per_request_us() -> float:
    """Best of 5 timings of N requests' capture, in microseconds per request."""
    from loadtests import _capture

    if "raw" not in inspect.signature(_capture.make_row).parameters:  # before the raw-tuple capture
        old_make_row: Any = _capture.make_row

        def work() -> None:
            rows = [old_make_row(META, "offload", "open", "0") for _ in range(N)]  # the old listener
            csv.writer(io.StringIO()).writerows(rows)  # the old flush

    else:
        from loadtests._loadside import LoadSide

        raws: list[Any] = []
        side = LoadSide.__new__(LoadSide)  # only on_request's buffer is used: no greenlet, no stats
        side.buffer = type("Buffer", (), {"raws": raws})()  # type: ignore[assignment]
        formatter = _capture.RowFormatter("offload", "open", "0")

        def work() -> None:
            raws.clear()
            for _ in range(N):
                side.on_request(**META)
            for i in range(0, N, _capture.SLICE_ROWS):
                formatter.format(raws[i : i + _capture.SLICE_ROWS])

    return min(timeit.repeat(work, number=1, repeat=5)) / N * 1e6


if __name__ == "__main__":
    sys.path.insert(0, sys.argv[1])
    sys.stdout.write(f"{per_request_us():.3f}\n")

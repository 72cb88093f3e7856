"""The load-process role (local runner or Locust worker): capture this process's samples, count its arrivals.

Samples go to a sink: the run folder's file (local run) or the master (worker), as CSV text in batches.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Final

import gevent
from gevent.event import Event

from loadtests._capture import RowFormatter, SampleBuffer, error_text
from loadtests._loadgen import LoadgenStats
from loadtests._options import LoadOptions

FLUSH_EVERY_S: Final = 0.5
CPU_EVERY_TICKS: Final = 2  # CPU sample and behind-warning once a second
# gevent.sleep(0) only queues a callback, and gevent runs callbacks queued meanwhile in the same pass (checking
# the clock every 50): sliced by it, a flush of 3,000 rows held off the open model's timers and responses for
# 5-25 ms. A timer, even a due one, goes through one loop iteration, which polls I/O and timers first.
BETWEEN_SLICES_S: Final = 0.000_001


def between_slices() -> None:
    """Let the loop poll I/O and timers once (every greenlet ready runs) before the flush goes on."""
    gevent.sleep(BETWEEN_SLICES_S)


_log = logging.getLogger("loadtests")


class LoadSide:
    """One test of one load process: loadgen counters, the raw-sample buffer and its flusher greenlet."""

    def __init__(self, opts: LoadOptions, proc: str, sink: Callable[[str, int], None] | None) -> None:
        self.opts = opts
        self.stats = LoadgenStats(proc=proc, model=opts.model, late_threshold_ms=opts.late_threshold_ms)
        self.buffer: SampleBuffer | None = None
        if sink is not None:
            formatter = RowFormatter(opts.mode, opts.model, proc)
            self.buffer = SampleBuffer(sink, formatter, pause=between_slices)
        self._stop = Event()
        self._ticker = gevent.spawn(self._tick)

    def _tick(self) -> None:
        n = 0
        while not self._stop.wait(FLUSH_EVERY_S):
            if self.buffer is not None:
                self.buffer.flush()  # sliced: the open model's waits are not held up by a long batch
            n += 1
            if n % CPU_EVERY_TICKS == 0:
                self.stats.sample_cpu()
                self.stats.warn_if_behind()

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float,
        response_length: int,
        response: Any = None,
        context: Any = None,
        exception: BaseException | None = None,
        start_time: float | None = None,
        **_: Any,
    ) -> None:
        """Locust's `request` listener: one raw tuple appended, nothing else (formatting is batched)."""
        buffer = self.buffer
        if buffer is not None:
            buffer.raws.append(
                (
                    time.time() - response_time / 1000.0 if start_time is None else start_time,
                    response_time,
                    context or {},
                    f"{request_type} {name}",
                    error_text(exception) if exception is not None else "",
                    getattr(response, "status_code", 0) or 0,
                    response_length or 0,
                )
            )

    def stop(self) -> dict[str, Any]:
        """End of the test: stop the flusher, send every buffered sample, return the loadgen numbers."""
        self._stop.set()
        self._ticker.join()
        self.stats.sample_cpu()
        if self.opts.model == "open":
            st = self.stats
            _log.info(
                "open model (proc %s): %d arrivals scheduled, %d sent, %d late, %d dropped",
                st.proc,
                st.scheduled,
                st.sent,
                st.late,
                st.dropped,
            )
        if self.buffer is not None:
            self.buffer.flush(sliced=False)
        return self.stats.as_dict()

"""The peer of bench_worker.py: arq's own `Worker` running our job function, as arq's CLI would run it.

    OFFLOAD_REDIS_URL=... python benchmarks/_arq_stock.py

Same Redis, same job function (service.job.backfill_source, with its lifecycle records and retries), the
same arq keyword arguments as `python -m service.worker` (service.worker.worker_kwargs: slots, poll delay,
timeouts, deserializer, start/stop hooks), only the class is arq's stock `Worker` instead of our
GracefulWorker, on the stdlib asyncio loop (arq's CLI installs no other). What that leaves out of the stock
side: our batch claims, the one-script finish and the success record inside it (the stock worker never writes
the "done" record: one write less per job than ours), the adaptive claim limit, uvloop, the graceful SIGTERM.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import random
import socket
import sys

from arq.worker import Worker

from service.settings import Settings
from service.worker import worker_kwargs
from service.worker_state import WorkerState


def main() -> int:
    """Run arq's Worker until SIGTERM."""
    logging.basicConfig(level=logging.WARNING)
    settings = Settings()
    asyncio.set_event_loop(asyncio.new_event_loop())
    worker_id = f"{socket.gethostname()}-{os.getpid()}-stock"
    state = WorkerState(settings, worker_id, random.Random(worker_id))
    worker = Worker(**worker_kwargs(settings, state))
    gc.collect()
    gc.freeze()  # as service.worker does: the comparison is of the Worker classes, not of the GC
    worker.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

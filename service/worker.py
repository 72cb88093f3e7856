"""The worker's entry point: `python -m service.worker` runs one worker process with settings from the
environment. The job (retries, DLQ) is service/job.py, its records service/attempt.py; the process around
it (graceful SIGTERM, batch claims) is service/worker_runtime.py, its state and heartbeat
service/worker_state.py.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import logging.config
import os
import random
import socket
import sys
from typing import Any, Final

from arq.worker import func
from pydantic import ValidationError
from redis.exceptions import RedisError

from service import keys
from service.job import backfill_source
from service.jsonlog import log_config
from service.parking import EvictionRiskError
from service.settings import Settings
from service.worker_conn import load_job, redis_settings
from service.worker_runtime import GracefulWorker
from service.worker_state import WorkerState, on_shutdown, on_startup

__all__ = ["ARQ_MAX_TRIES", "backfill_source", "build_worker", "main", "worker_kwargs"]

ARQ_MAX_TRIES: Final = 1_000_000  # arq must never end a job itself: our job parks it first
log = logging.getLogger("service.worker")


def worker_kwargs(settings: Settings, state: WorkerState) -> dict[str, Any]:
    """Everything our Worker is built from (the WorkerSettings equivalent, as arq's keyword arguments)."""
    # ours fires first, from the job's start (service/job.py); the settings validate the margin
    arq_timeout_s = settings.job_timeout_s + settings.orphan_margin_s / 2
    return {
        "functions": [
            func(backfill_source, name=keys.JOB_FUNCTION, timeout=arq_timeout_s, max_tries=ARQ_MAX_TRIES)
        ],
        "redis_settings": redis_settings(settings),
        "max_jobs": settings.max_jobs,
        "poll_delay": settings.poll_delay_s,
        "job_timeout": arq_timeout_s,
        "max_tries": ARQ_MAX_TRIES,
        "job_deserializer": load_job,  # plain data only: never unpickles code from Redis
        "keep_result": 0,  # nobody reads arq results; at 10k jobs they would only cost memory
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "ctx": {"ob": state},
        "handle_signals": True,
        "job_completion_wait": 0,  # our handle_sig does the waiting (arq's variant keeps claiming jobs)
        "health_check_interval": 60,
    }


def build_worker(settings: Settings) -> GracefulWorker:
    """A worker for these settings (call inside the thread that will run it)."""
    worker_id = f"{socket.gethostname()}-{os.getpid()}"
    state = WorkerState(settings, worker_id, random.Random(f"{settings.work.seed}:{worker_id}"))
    return GracefulWorker(state=state, **worker_kwargs(settings, state))


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when it is installed (uvicorn[standard] brings it, as uvicorn's "auto" loop does).

    A worker's CPU per job is mostly Redis round trips through the event loop (benchmarks/README.md).
    """
    try:
        import uvloop  # noqa: PLC0415 - optional: stdlib asyncio without it
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def main() -> int:
    """`python -m service.worker`: run one worker until SIGTERM/SIGINT; 0 on a clean stop."""
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"])
        where = f" {name}" if name else ""
        hint = f" (check OFFLOAD_{name.upper()})" if name else ""
        print(f"error: invalid worker setting{where}: {first['msg']}{hint}", file=sys.stderr)  # noqa: T201
        return 2
    logging.config.dictConfig(log_config(settings.log_level))
    # arq logs two prose lines per job; our started/succeeded events replace them on the hot path
    logging.getLogger("arq").setLevel(logging.WARNING)
    asyncio.set_event_loop(new_event_loop())
    worker = build_worker(settings)
    # the objects alive now (modules, arq, pydantic) are never garbage: keep full collections off them
    gc.collect()
    gc.freeze()
    try:
        worker.run()
    except EvictionRiskError as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    except (RedisError, OSError) as exc:
        log.error("worker stopped: redis unavailable", extra={"error": f"{type(exc).__name__}: {exc}"})
        return 1
    finally:
        worker.loop.close()
    log.info("worker stopped", extra={"completed": worker.jobs_complete, "retried": worker.jobs_retried})
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A stock arq worker: `arq worker.WorkerSettings` (run from this folder)."""

from __future__ import annotations

import os
from typing import Any

import work
from arq.connections import RedisSettings


async def divide(ctx: dict[str, Any], x: float, y: float, username: str) -> float:
    """The offloaded job: the same work the sync route does inline."""
    return await work.divide(x, y)


class WorkerSettings:
    """arq reads these attributes (only the class's own: no inheritance)."""

    functions = [divide]
    redis_settings = RedisSettings.from_dsn(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    keep_result = int(os.environ.get("KEEP_RESULT_S", "3600"))  # 0: arq keeps no result
    job_timeout = int(os.environ.get("JOB_TIMEOUT_S", "5"))  # a SIGKILLed job re-runs after this + 10 s

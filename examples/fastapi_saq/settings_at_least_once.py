"""At least once: a failed or stuck job is tried again, and a finished job's record is kept for good.

`retries = 3` gives each job 3 tries (SAQ counts the first); `timeout` fitted to the job (20 x WORK_MS, at least
1 s) lets a sweep find a job whose worker died soon, and the worker sweeps every 5 s instead of 60 s: such a job
is then retried instead of waiting a minute. `ttl = 0` keeps every finished job's record, so a finished job is
told from a lost one long after the run (`TTL_S` to change it). Chosen with SAQ_SETTINGS=settings_at_least_once.
"""

from __future__ import annotations

import math
import os
from typing import Any

from work import WORK_MS

ENQUEUE: dict[str, Any] = {
    "retries": 3,
    "timeout": max(1, math.ceil(20 * WORK_MS / 1000)),  # whole seconds: SAQ's unit
    "ttl": int(os.environ.get("TTL_S", "0")),  # 0: keep forever
}
TIMERS: dict[str, int] = {"sweep": 5}

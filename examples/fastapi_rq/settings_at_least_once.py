"""At least once: a failed or abandoned job is retried, and a finished job's record is kept for a day.

`Retry(max=3, interval=...)` re-runs a job that raised, and one whose worker died (RQ's maintenance finds it in
the started registry and retries it while retries are left); retries with an interval wait in the scheduled
registry, so the worker runs with `--with-scheduler`. `result_ttl` keeps a finished job's hash and result long
enough to tell a finished job from a lost one after the run. Chosen with RQ_SETTINGS=settings_at_least_once.
"""

from __future__ import annotations

import os
from typing import Any

from rq import Retry

ENQUEUE: dict[str, Any] = {
    "retry": Retry(max=3, interval=[1, 2, 4]),
    "result_ttl": int(os.environ.get("RESULT_TTL_S", "86400")),  # -1: keep forever
}

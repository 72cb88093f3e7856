"""At least once, and seen: results kept longer than the run, retries fitted to the job.

The Results middleware stores every return value (and a failure's exception once its retries have run out)
under `dramatiq-results` keys for RESULT_TTL_MS (1 day here, Dramatiq's default is 10 minutes: shorter than a
long run). A failure is retried up to 3 times after 100–200, 200–400, 400–800 ms (Dramatiq's jittered backoff) instead of up to 20
times from 15 s. Chosen with DRAMATIQ_SETTINGS=settings_at_least_once.
"""

from __future__ import annotations

import os
from typing import Any

RESULT_TTL_MS: int | None = int(os.environ.get("RESULT_TTL_MS", str(86_400_000)))
ACTOR: dict[str, Any] = {"store_results": True, "max_retries": 3, "min_backoff": 100, "max_backoff": 1_000}

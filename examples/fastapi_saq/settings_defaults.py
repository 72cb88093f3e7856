"""SAQ's defaults: one try (retries = 1), timeout 10 s, a finished job's record kept ttl = 600 s.

A job whose worker is SIGKILLed stays "active" until a worker's sweep (every 60 s) finds it past its timeout;
with no try left it ends "aborted" and never runs again. Chosen with SAQ_SETTINGS=settings_defaults (the default).
"""

from __future__ import annotations

from typing import Any

ENQUEUE: dict[str, Any] = {}  # Job fields given to Queue.enqueue: none, SAQ decides
TIMERS: dict[str, int] = {}  # Worker timers: SAQ's (sweep every 60 s)

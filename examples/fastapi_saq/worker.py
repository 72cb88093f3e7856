"""SAQ's stock worker for this app, started by SAQ's own command from this folder: `saq worker.settings`.

REDIS_URL names the Redis, SAQ_QUEUE the queue (default "default"), SAQ_SETTINGS the settings module.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import jobs
from saq import Queue

SETTINGS = importlib.import_module(os.environ.get("SAQ_SETTINGS", "settings_defaults"))
QUEUE = os.environ.get("SAQ_QUEUE", "default")

settings: dict[str, Any] = {
    "queue": Queue.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), name=QUEUE),
    "functions": [jobs.divide],  # registered as "divide" (its __qualname__)
    "concurrency": 10,  # SAQ's default, said out loud
    "timers": SETTINGS.TIMERS,
}

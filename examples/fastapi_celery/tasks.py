"""The Celery app and its task, run by Celery's stock worker from this folder: `celery -A tasks worker`.

REDIS_URL is both the broker and the result backend. CELERY_SETTINGS names the settings module (Celery's own
`config_from_object`): settings_defaults (Celery's defaults) or settings_at_least_once.
"""

from __future__ import annotations

import os

import work
from celery import Celery

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

app = Celery("tasks", broker=REDIS_URL, backend=REDIS_URL)
app.config_from_object(os.environ.get("CELERY_SETTINGS", "settings_defaults"))


@app.task(name="tasks.divide")
def divide(x: float, y: float, username: str) -> float:
    """The offloaded job: the same work the sync route does inline (ZeroDivisionError fails it, no retry)."""
    return work.divide(x, y)

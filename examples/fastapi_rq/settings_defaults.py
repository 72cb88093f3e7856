"""RQ's defaults: no retry; a finished job's record is kept result_ttl = 500 s, a failed one's a year.

A job whose worker is SIGKILLed is moved to the failed registry (AbandonedJobError) by a later maintenance
pass and never runs again. Chosen with RQ_SETTINGS=settings_defaults (the default).
"""

from __future__ import annotations

from typing import Any

ENQUEUE: dict[str, Any] = {}  # keyword arguments of Queue.enqueue: none, RQ decides

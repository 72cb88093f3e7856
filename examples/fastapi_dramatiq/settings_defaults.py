"""Dramatiq's defaults: no Results middleware, up to 20 retries from 15 s backoff, ack when the actor has run.

An ack deletes the message: a success leaves no trace in Redis, so nobody can tell it from a lost message
afterwards. A message whose worker dies stays unacked and is put back in the queue by a later broker call's
maintenance once the worker's heartbeat is 60 s old (at least once). Chosen with
DRAMATIQ_SETTINGS=settings_defaults (the default).
"""

from __future__ import annotations

from typing import Any

RESULT_TTL_MS: int | None = None  # no Results middleware
ACTOR: dict[str, Any] = {}  # actor options: none, Dramatiq decides

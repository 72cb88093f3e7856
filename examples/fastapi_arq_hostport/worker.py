"""A stock arq worker: `arq worker.WorkerSettings` (run from this folder).

Its only Redis setting is REDIS_BROKER=host:port: no password field, as in many apps.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from arq.connections import RedisSettings

_host, _, _port = os.environ.get("REDIS_BROKER", "localhost:6379").partition(":")
REDIS_SETTINGS = RedisSettings(host=_host, port=int(_port or 6379))
SEND_MS = float(os.environ.get("WORK_MS", "50"))


async def send_welcome(email: str) -> str:
    """The slow part of a signup: SEND_MS waiting on a (simulated) mail provider; no '@' fails, on purpose."""
    await asyncio.sleep(SEND_MS / 1000)
    if "@" not in email:
        raise ValueError(f"not an email address: {email!r}")
    return f"welcome mail sent to {email}"


async def welcome(ctx: dict[str, Any], email: str) -> str:
    """The offloaded job: the same mail the sync route sends inline."""
    return await send_welcome(email)


class WorkerSettings:
    """arq reads these attributes (only the class's own: no inheritance)."""

    functions = [welcome]
    redis_settings = REDIS_SETTINGS

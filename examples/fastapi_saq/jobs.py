"""The job SAQ's stock worker runs (registered in worker.py under its name, "divide")."""

from __future__ import annotations

from typing import Any

import work


async def divide(ctx: dict[str, Any], *, x: float, y: float, username: str) -> float:
    """The offloaded job: the same work the sync route does inline."""
    return await work.divide(x, y)

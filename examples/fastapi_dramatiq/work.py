"""The work both routes do: wait on a (simulated) remote call, then divide. y == 0 fails, on purpose."""

from __future__ import annotations

import os
import time

WORK_MS = float(os.environ.get("WORK_MS", "50"))


def divide(x: float, y: float) -> float:
    """The slow part of the request: WORK_MS of I/O wait, then x / y (ZeroDivisionError when y == 0)."""
    time.sleep(WORK_MS / 1000)
    return x / y

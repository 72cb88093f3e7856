"""A small ASGI stand-in for the sources API with timing faults, for load-generator tests.

Environment knobs (read at import):
  TESTAPP_DELAY_MS        every request takes this long (a slow endpoint)
  TESTAPP_FREEZE_EVERY_S  with TESTAPP_FREEZE_S: a global freeze window of FREEZE_S seconds at the start of
                          every FREEZE_EVERY_S seconds of wall time (counted from TESTAPP_FREEZE_ORIGIN_TS, epoch
                          s, default 0); a request arriving in it is held until the window ends (a
                          stop-the-world pause of the server)
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from typing import Any

DELAY_S = float(os.environ.get("TESTAPP_DELAY_MS", "0")) / 1000.0
FREEZE_EVERY_S = float(os.environ.get("TESTAPP_FREEZE_EVERY_S", "0"))
FREEZE_S = float(os.environ.get("TESTAPP_FREEZE_S", "0"))
FREEZE_ORIGIN_TS = float(os.environ.get("TESTAPP_FREEZE_ORIGIN_TS", "0"))
STATUS = {"noop": 201, "sync": 201, "offload": 202}


def freeze_left_s(now: float) -> float:
    """Seconds until the current freeze window ends (0 outside one)."""
    if FREEZE_EVERY_S <= 0 or FREEZE_S <= 0:
        return 0.0
    into = (now - FREEZE_ORIGIN_TS) % FREEZE_EVERY_S
    return FREEZE_S - into if into < FREEZE_S else 0.0


async def _reply(send: Any, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """POST /<mode>/sources answers like the real API; GET /healthz answers 200."""
    if scope["type"] != "http":
        return
    more = True
    while more:  # drain the request body
        message = await receive()
        more = message.get("more_body", False)
    path = scope["path"]
    if path == "/healthz":
        await _reply(send, 200, {"status": "ok"})
        return
    hold_s = freeze_left_s(time.time()) + DELAY_S
    if hold_s > 0:
        await asyncio.sleep(hold_s)
    parts = path.strip("/").split("/")
    if scope["method"] == "POST" and len(parts) == 2 and parts[1] == "sources" and parts[0] in STATUS:
        body: dict[str, Any] = {"source_id": uuid.uuid4().hex}
        if parts[0] == "offload":
            body["job_id"] = uuid.uuid4().hex
        else:
            body["state"] = "created"
        await _reply(send, STATUS[parts[0]], body)
        return
    await _reply(send, 404, {"detail": "not found"})

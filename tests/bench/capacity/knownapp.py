"""A server with a known capacity: C service slots of S ms each behind an unbounded queue (capacity C/S).

Environment knobs (read at import): KNOWNAPP_SLOTS (C), KNOWNAPP_SERVICE_MS (S). Every POST /<mode>/sources
waits for a free slot (an asyncio semaphore: the queue in front), holds it S ms (asyncio.sleep, no CPU), and
answers like the sample API, so Locust's scenarios run unchanged. GET /healthz answers at once.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from typing import Any

SLOTS = int(os.environ.get("KNOWNAPP_SLOTS", "4"))
SERVICE_S = float(os.environ.get("KNOWNAPP_SERVICE_MS", "100")) / 1000.0
STATUS = {"noop": 201, "sync": 201, "offload": 202}
_slots: asyncio.Semaphore | None = None


async def _reply(send: Any, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """POST /<mode>/sources: queue for one of SLOTS slots, hold it SERVICE_S, answer; GET /healthz."""
    global _slots
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    parts = scope["path"].strip("/").split("/")
    if scope["path"] == "/healthz":
        await _reply(send, 200, {"status": "ok"})
        return
    if scope["method"] != "POST" or len(parts) != 2 or parts[1] != "sources" or parts[0] not in STATUS:
        await _reply(send, 404, {"detail": "not found"})
        return
    if _slots is None:  # created on the server's own loop
        _slots = asyncio.Semaphore(SLOTS)
    async with _slots:
        await asyncio.sleep(SERVICE_S)
    body: dict[str, Any] = {"source_id": uuid.uuid4().hex}
    if parts[0] == "offload":
        body["job_id"] = uuid.uuid4().hex
    await _reply(send, STATUS[parts[0]], body)

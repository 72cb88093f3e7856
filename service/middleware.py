"""Pure ASGI middleware (cheaper than BaseHTTPMiddleware): body size limit and request metrics."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.metrics import Registry

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# an oversized body is read and discarded up to this size before the 413, so the client (still sending)
# reads the answer instead of a connection reset; beyond it we answer at once and the connection closes
DRAIN_CAP_BYTES = 1 << 20


async def _send_json(send: Send, status: int, body: Mapping[str, object]) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def _drain(receive: Receive, budget_bytes: int = DRAIN_CAP_BYTES) -> None:
    """Read and drop the rest of the request body, up to budget_bytes."""
    while budget_bytes > 0:
        message = await receive()
        if message["type"] != "http.request":
            return
        budget_bytes -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return


class BodyLimitMiddleware:
    """413 JSON when a request body exceeds max_bytes: by Content-Length up front, else by the streamed size.

    The body is read here (bounded) and replayed to the app, so an oversized chunked body never reaches it.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        too_big = {"detail": f"request body exceeds {self.max_bytes} bytes"}
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_json(send, 400, {"detail": "invalid Content-Length header"})
                    return
                if declared > self.max_bytes:
                    if declared <= DRAIN_CAP_BYTES:
                        await _drain(receive)
                    await _send_json(send, 413, too_big)
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                if message.get("more_body", False):
                    await _drain(receive, DRAIN_CAP_BYTES - size)
                await _send_json(send, 413, too_big)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class MetricsMiddleware:
    """Count requests and time them per route template (unknown paths share the route label `unmatched`)."""

    def __init__(self, app: ASGIApp, registry: Registry) -> None:
        self.app = app
        self.registry = registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            self.registry.observe(scope["method"], label, status, time.perf_counter() - start)

"""A small FastAPI app with one piece of work done two ways: inline (sync) or as a Dramatiq message (offload).

REDIS_URL=redis://127.0.0.1:6379/0 uvicorn main:app --port 8000
DRAMATIQ_SETTINGS=settings_at_least_once picks the settings that keep results (and retry) instead of Dramatiq's defaults;
the worker (`dramatiq tasks`) reads the same variable.
"""

from __future__ import annotations

from typing import Any

import work
from dramatiq import Message
from dramatiq.results import ResultFailure, ResultMissing
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from tasks import QUEUE, backend, divide


class Division(BaseModel):
    """What a client asks for."""

    x: float
    y: float
    username: str


app = FastAPI()


@app.get("/health")
async def health() -> dict[str, str]:
    """Up."""
    return {"status": "ok"}


# Dramatiq's client is synchronous: plain `def` routes run in FastAPI's thread pool, off the event loop
@app.post("/tasks/divide/sync")
def divide_sync(body: Division) -> dict[str, Any]:
    """Do the work inside the request."""
    try:
        return {"result": work.divide(body.x, body.y)}
    except ZeroDivisionError:
        raise HTTPException(422, detail="y must not be 0") from None


@app.post("/tasks/divide", status_code=202)
def divide_offload(body: Division) -> dict[str, Any]:
    """Send the work as a Dramatiq message; answer at once with its id."""
    message = divide.send(body.x, body.y, body.username)
    return {"job_id": message.message_id}


@app.get("/tasks/{job_id}")
def task_status(job_id: str) -> dict[str, Any]:
    """done | failed | unknown (no result yet, or none kept: Dramatiq keeps nothing else to ask)."""
    if backend is None:
        return {"status": "unknown"}  # no Results middleware: an acked message leaves no trace
    message = Message(
        queue_name=QUEUE, actor_name=divide.actor_name, args=(), kwargs={}, options={}, message_id=job_id
    )
    try:
        return {"status": "done", "result": backend.get_result(message)}
    except ResultFailure as exc:
        return {"status": "failed", "error": str(exc)}
    except ResultMissing:
        return {"status": "unknown"}

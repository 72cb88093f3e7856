"""A small FastAPI app with one piece of work done two ways: inline (sync) or as a SAQ job (offload).

REDIS_URL=redis://127.0.0.1:6379/0 uvicorn main:app --port 8000
SAQ_SETTINGS=settings_at_least_once picks the job settings (retries, a fitted timeout, ttl = 0) instead of SAQ's
defaults; the worker (`saq worker.settings`) reads the same variable.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import work
from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel
from saq import Queue
from saq.job import Status

SETTINGS = importlib.import_module(os.environ.get("SAQ_SETTINGS", "settings_defaults"))
QUEUE = os.environ.get("SAQ_QUEUE", "default")


class Division(BaseModel):
    """What a client asks for."""

    x: float
    y: float
    username: str


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One SAQ Queue (and its Redis pool) for the app's life."""
    app.state.queue = Queue.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), name=QUEUE)
    await app.state.queue.connect()
    yield
    await app.state.queue.disconnect()


app = FastAPI(lifespan=lifespan)


@app.get("/health")
async def health() -> dict[str, str]:
    """Up."""
    return {"status": "ok"}


@app.post("/tasks/divide/sync")
async def divide_sync(body: Division) -> dict[str, Any]:
    """Do the work inside the request."""
    try:
        return {"result": await work.divide(body.x, body.y)}
    except ZeroDivisionError:
        raise HTTPException(422, detail="y must not be 0") from None


@app.post("/tasks/divide", status_code=202)
async def divide_offload(body: Division, request: Request) -> dict[str, Any]:
    """Enqueue the work as a SAQ job; answer at once with its key."""
    queue: Queue = request.app.state.queue
    job = await queue.enqueue("divide", x=body.x, y=body.y, username=body.username, **SETTINGS.ENQUEUE)
    if job is None:  # SAQ returns None for a key already enqueued: never with its default (uuid1) keys
        raise HTTPException(409, detail="job already enqueued")
    return {"job_id": job.key}


@app.get("/tasks/{job_id}")
async def task_status(job_id: str, request: Request) -> dict[str, Any]:
    """queued | active | complete | failed | aborted | ... | not_found (404)."""
    job = await request.app.state.queue.job(job_id)
    if job is None:
        raise HTTPException(404, detail="no such job (or its record expired: ttl)")
    if job.status == Status.COMPLETE:
        return {"status": "complete", "result": job.result}
    return {"status": job.status.value}

"""A small FastAPI app with one piece of work done two ways: inline (sync) or as an RQ job (offload).

REDIS_URL=redis://127.0.0.1:6379/0 uvicorn main:app --port 8000
RQ_SETTINGS=settings_at_least_once picks the enqueue settings (retries, a kept result) instead of RQ's defaults.
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
from redis import Redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

SETTINGS = importlib.import_module(os.environ.get("RQ_SETTINGS", "settings_defaults"))
QUEUE = os.environ.get("RQ_QUEUE", "default")


class Division(BaseModel):
    """What a client asks for."""

    x: float
    y: float
    username: str


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One Redis connection pool and one RQ Queue for the app's life."""
    app.state.redis = Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    app.state.queue = Queue(QUEUE, connection=app.state.redis)
    yield
    app.state.redis.close()


app = FastAPI(lifespan=lifespan)


@app.get("/health")
async def health() -> dict[str, str]:
    """Up."""
    return {"status": "ok"}


# RQ's client is synchronous: plain `def` routes run in FastAPI's thread pool, off the event loop
@app.post("/tasks/divide/sync")
def divide_sync(body: Division) -> dict[str, Any]:
    """Do the work inside the request."""
    try:
        return {"result": work.divide(body.x, body.y)}
    except ZeroDivisionError:
        raise HTTPException(422, detail="y must not be 0") from None


@app.post("/tasks/divide", status_code=202)
def divide_offload(body: Division, request: Request) -> dict[str, Any]:
    """Enqueue the work as an RQ job; answer at once with its id."""
    queue: Queue = request.app.state.queue
    job = queue.enqueue("jobs.divide", body.x, body.y, body.username, **SETTINGS.ENQUEUE)
    return {"job_id": job.id}


@app.get("/tasks/{job_id}")
def task_status(job_id: str, request: Request) -> dict[str, Any]:
    """queued | started | deferred | scheduled | finished | failed | ... | not_found (404)."""
    try:
        job = Job.fetch(job_id, connection=request.app.state.redis)
    except NoSuchJobError:
        raise HTTPException(404, detail="no such job (or its result expired)") from None
    status = job.get_status()
    if status == JobStatus.FINISHED:
        return {"status": "finished", "result": repr(job.return_value())}
    return {"status": status.value if status else "unknown"}

"""A small FastAPI app with one piece of work done two ways: inline (sync) or as an arq job (offload).

REDIS_URL=redis://127.0.0.1:6379/0 uvicorn main:app --port 8000
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import work
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.jobs import Job, JobStatus
from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel


class Division(BaseModel):
    """What a client asks for."""

    x: float
    y: float
    username: str


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One arq pool for the app's life."""
    app.state.arq = await create_pool(
        RedisSettings.from_dsn(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    )
    yield
    await app.state.arq.aclose()


app = FastAPI(lifespan=lifespan)


def _arq(request: Request) -> ArqRedis:
    pool: ArqRedis = request.app.state.arq
    return pool


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
    """Enqueue the work as an arq job; answer at once with its id."""
    job = await _arq(request).enqueue_job("divide", body.x, body.y, body.username)
    if job is None:  # arq returns None for a duplicate job id
        raise HTTPException(409, detail="job already exists")
    return {"job_id": job.job_id}


@app.get("/tasks/{job_id}")
async def task_status(job_id: str, request: Request) -> dict[str, Any]:
    """queued | deferred | in_progress | complete | failed | not_found (404)."""
    job = Job(job_id, _arq(request))
    status = await job.status()
    if status == JobStatus.not_found:
        raise HTTPException(404, detail="no such job (or its result expired)")
    if status != JobStatus.complete:
        return {"status": status.value}
    info = await job.result_info()
    if info is None:
        return {"status": "complete"}
    return {"status": "complete" if info.success else "failed", "result": repr(info.result)}

"""A small FastAPI app with one piece of work done two ways: inline (sync) or as a Celery task (offload).

REDIS_URL=redis://127.0.0.1:6379/0 uvicorn main:app --port 8000
CELERY_SETTINGS=settings_at_least_once picks the at-least-once settings (late ack) instead of Celery's defaults.
"""

from __future__ import annotations

from typing import Any

import work
from celery.result import AsyncResult
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from tasks import app as celery_app
from tasks import divide


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


# Celery's client is synchronous: plain `def` routes run in FastAPI's thread pool, off the event loop
@app.post("/tasks/divide/sync")
def divide_sync(body: Division) -> dict[str, Any]:
    """Do the work inside the request."""
    try:
        return {"result": work.divide(body.x, body.y)}
    except ZeroDivisionError:
        raise HTTPException(422, detail="y must not be 0") from None


@app.post("/tasks/divide", status_code=202)
def divide_offload(body: Division) -> dict[str, Any]:
    """Send the work as a Celery task; answer at once with its id."""
    result = divide.delay(body.x, body.y, body.username)
    return {"job_id": result.id}


@app.get("/tasks/{job_id}")
def task_status(job_id: str) -> dict[str, Any]:
    """Celery's state: PENDING (queued, or unknown to Celery), STARTED, RETRY, SUCCESS, FAILURE, REVOKED."""
    result = AsyncResult(job_id, app=celery_app)
    if result.state == "SUCCESS":
        return {"status": result.state, "result": repr(result.result)}
    return {"status": result.state}

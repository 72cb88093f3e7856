"""A FastAPI signup that sends a welcome mail inline (sync) or as an arq job (offload).

REDIS_BROKER=127.0.0.1:6379 uvicorn main:app --port 8000
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from arq import create_pool
from fastapi import FastAPI, Request
from pydantic import BaseModel
from worker import REDIS_SETTINGS, send_welcome


class Signup(BaseModel):
    """A new user."""

    email: str


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Connect to Redis once, at startup (the app exits here when Redis refuses it)."""
    app.state.redis = await create_pool(REDIS_SETTINGS)
    yield
    await app.state.redis.aclose()


app = FastAPI(lifespan=lifespan)


@app.get("/health")
async def health() -> dict[str, str]:
    """Up."""
    return {"status": "ok"}


@app.post("/signup/sync")
async def signup_sync(user: Signup) -> dict[str, Any]:
    """Send the welcome mail inside the request."""
    return {"mail": await send_welcome(user.email)}


@app.post("/signup", status_code=202)
async def signup(user: Signup, request: Request) -> dict[str, Any]:
    """Enqueue the welcome mail as an arq job; answer at once with its id."""
    job = await request.app.state.redis.enqueue_job("welcome", user.email)
    return {"job_id": job.job_id if job else None}

"""Source records in Redis: create, read, and the Idempotency-Key mapping of the noop and sync modes."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from redis.asyncio import Redis

from service import keys
from service.models import SourceIn


def new_id() -> str:
    """A fresh random id (32 hex chars) for a source or a job."""
    return uuid.uuid4().hex


def source_fields(
    body: SourceIn, mode: str, state: str, **extra: str | int | float
) -> dict[str, str | int | float]:
    """The source hash written at creation."""
    return {
        "user_id": body.user_id,
        "name": body.name,
        "mode": mode,
        "state": state,
        "attempts": 0,
        "created_ts": f"{time.time():.3f}",
        **extra,
    }


async def create_source(
    redis: Redis, source_id: str, fields: dict[str, str | int | float], ttl_s: int
) -> None:
    """HSET the source record with a TTL in one round trip."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(keys.source(source_id), mapping=fields)
        pipe.expire(keys.source(source_id), ttl_s)
        await pipe.execute()


async def read_source(redis: Redis, source_id: str) -> dict[str, Any] | None:
    """The source hash as str -> str, or None when unknown."""
    raw = await redis.hgetall(keys.source(source_id))  # type: ignore[misc]  # redis-py typing
    if not raw:
        return None
    return {_text(k): _text(v) for k, v in raw.items()}


async def claim_idempotency(redis: Redis, scoped_key: str, source_id: str, ttl_s: int) -> str | None:
    """SET NX the key -> {source_id}; None when claimed now, else the first request's source id."""
    key = keys.idempotency(scoped_key)
    claimed = await redis.set(key, json.dumps({"source_id": source_id}), nx=True, ex=ttl_s)
    if claimed:
        return None
    prior = await redis.get(key)
    if prior is None:  # expired between the two calls: treat as ours
        return None
    return str(json.loads(prior)["source_id"])


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

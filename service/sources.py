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
    redis: Redis,
    source_id: str,
    fields: dict[str, str | int | float],
    ttl_s: int,
    idempotency_key: str | None = None,
    idempotency_ttl_s: int = 86_400,
) -> str | None:
    """HSET the source record with a TTL (and claim the scoped Idempotency-Key) in one round trip.

    Returns None when created, else the source id of the first request that used the key (then nothing of
    ours is kept). The key and the source appear together, so a replay never points at a missing source.
    """
    source_key = keys.source(source_id)
    async with redis.pipeline(transaction=True) as pipe:
        if idempotency_key is not None:
            value = json.dumps({"source_id": source_id})
            pipe.set(keys.idempotency(idempotency_key), value, nx=True, ex=idempotency_ttl_s)
        pipe.hset(source_key, mapping=fields)
        pipe.expire(source_key, ttl_s)
        results = await pipe.execute()
    if idempotency_key is None or results[0]:
        return None
    async with redis.pipeline(transaction=False) as pipe:  # lost the race: drop our copy, read theirs
        pipe.delete(source_key)
        pipe.get(keys.idempotency(idempotency_key))
        _, prior = await pipe.execute()
    return str(json.loads(prior)["source_id"]) if prior is not None else None


async def read_source(redis: Redis, source_id: str) -> dict[str, Any] | None:
    """The source hash as str -> str, or None when unknown."""
    raw = await redis.hgetall(keys.source(source_id))  # type: ignore[misc]  # redis-py typing
    if not raw:
        return None
    return {_text(k): _text(v) for k, v in raw.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

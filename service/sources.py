"""Source records in Redis: create, read, and the Idempotency-Key mapping of the noop and sync modes."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from service import keys
from service.models import SourceIn


def new_id() -> str:
    """A fresh random id (32 hex chars) for a source or a job."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Idempotency:
    """A request's Idempotency-Key, scoped to its mode and user, with the fingerprint of its body."""

    key: str  # the scoped suffix of keys.idempotency()
    body_hash: str

    @classmethod
    def of(cls, mode: str, body: SourceIn, key: str | None) -> Idempotency | None:
        """None without a key. Scoped per user (two clients reusing "1" never meet) and per mode.

        The user id is length-prefixed so that no (user, key) pair can spell another's scoped key.
        """
        if key is None:
            return None
        canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        return cls(f"{mode}:{len(body.user_id)}:{body.user_id}:{key}", digest)

    def value(self, **ids: str) -> str:
        """What the key maps to: the first request's ids and its body's fingerprint."""
        return json.dumps({**ids, "body_hash": self.body_hash})

    def matches(self, prior: dict[str, Any]) -> bool:
        """Whether a prior request under this key had the same body (records without a hash predate it)."""
        return prior.get("body_hash") in (None, self.body_hash)


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
    idem: Idempotency | None = None,
    idempotency_ttl_s: int = 86_400,
) -> dict[str, Any] | None:
    """HSET the source record with a TTL (and claim the scoped Idempotency-Key) in one round trip.

    Returns None when created, else what the first request that used the key stored ({source_id,
    body_hash}); then nothing of ours is kept. The key and the source appear together, so a replay never
    points at a missing source.
    """
    source_key = keys.source(source_id)
    async with redis.pipeline(transaction=True) as pipe:
        if idem is not None:
            pipe.set(
                keys.idempotency(idem.key), idem.value(source_id=source_id), nx=True, ex=idempotency_ttl_s
            )
        pipe.hset(source_key, mapping=fields)
        pipe.expire(source_key, ttl_s)
        results = await pipe.execute()
    if idem is None or results[0]:
        return None
    async with redis.pipeline(transaction=False) as pipe:  # lost the race: drop our copy, read theirs
        pipe.delete(source_key)
        pipe.get(keys.idempotency(idem.key))
        _, prior = await pipe.execute()
    return dict(json.loads(prior)) if prior is not None else None


async def read_source(redis: Redis, source_id: str) -> dict[str, Any] | None:
    """The source hash as str -> str, or None when unknown."""
    raw = await redis.hgetall(keys.source(source_id))  # type: ignore[misc]  # redis-py typing
    if not raw:
        return None
    return {keys.text(k): keys.text(v) for k, v in raw.items()}

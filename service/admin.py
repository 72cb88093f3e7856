"""Admin endpoints for the dead-letter queue (list, show, redrive one, redrive all, purge), behind a bearer token.

- No token configured (OFFLOAD_ADMIN_TOKEN unset): every /admin route answers 404 JSON, as if it did not
  exist: an unconfigured deployment exposes nothing to probe.
- Missing or wrong `Authorization: Bearer <token>`: 401 JSON with `WWW-Authenticate: Bearer`.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from redis.asyncio import Redis

from service import dlq

router = APIRouter(prefix="/admin", tags=["admin"])


def _app_state(request: Request) -> Any:
    # the API keeps its settings and its one Redis client on app.state.offload (service.routes.AppState)
    return request.app.state.offload


async def require_admin(request: Request) -> Redis:
    """Check the bearer token; return the app's Redis client."""
    state = _app_state(request)
    token: str | None = state.settings.admin_token
    if not token:
        raise HTTPException(404, "admin endpoints are disabled (set OFFLOAD_ADMIN_TOKEN to enable them)")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), token.encode()):
        raise HTTPException(401, "missing or wrong admin token", headers={"WWW-Authenticate": "Bearer"})
    redis: Redis = state.redis
    return redis


AdminRedis = Annotated[Redis, Depends(require_admin)]


@router.get("/dlq")
async def list_dlq(
    redis: AdminRedis,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Dead-letter records, most recent failure first."""
    return {"count": await dlq.count(redis), "records": await dlq.list_records(redis, limit, offset)}


@router.get("/dlq/{job_id}")
async def show_dlq(job_id: str, redis: AdminRedis) -> dict[str, Any]:
    """One dead-letter record."""
    rec = await dlq.show(redis, job_id)
    if rec is None:
        raise HTTPException(404, f"job {job_id} is not in the dead-letter queue")
    return rec


@router.post("/dlq/redrive")
async def redrive_all(request: Request, redis: AdminRedis) -> dict[str, Any]:
    """Redrive every record (fresh tries, same job ids)."""
    done, skipped = await dlq.redrive_all(redis, _app_state(request).settings.record_ttl_s)
    return {"redriven": done, "skipped": skipped}


@router.post("/dlq/{job_id}/redrive")
async def redrive_one(job_id: str, request: Request, redis: AdminRedis) -> dict[str, Any]:
    """Redrive one record."""
    if await dlq.show(redis, job_id) is None:
        raise HTTPException(404, f"job {job_id} is not in the dead-letter queue")
    try:
        rec = await dlq.redrive(redis, job_id, _app_state(request).settings.record_ttl_s)
    except dlq.DlqError as exc:
        raise HTTPException(409, str(exc)) from exc
    return {
        "redriven": job_id,
        "redrives": rec["redrives"],
        "already_queued": bool(rec.get("already_queued")),
    }


@router.delete("/dlq")
async def purge_dlq(redis: AdminRedis) -> dict[str, int]:
    """Delete every dead-letter record."""
    return {"purged": await dlq.purge(redis)}

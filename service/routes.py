"""HTTP routes: the four modes of "connect a source", source lookup, health and metrics."""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from arq.constants import default_queue_name
from fastapi import APIRouter, BackgroundTasks, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service import keys
from service.backfill import (
    BackfillError,
    BackfillResult,
    PoisonBackfillError,
    backoff_s,
    mark_source,
    run_backfill,
)
from service.enqueue import enqueue_backfill
from service.inprocess import InProcess
from service.metrics import CONTENT_TYPE, Registry, render
from service.models import JobAccepted, SourceCreated, SourceIn, SourceOut
from service.settings import Settings
from service.sources import Idempotency, create_source, new_id, read_source, source_fields

log = logging.getLogger("service.api")

STOP_STACKS_AFTER_S = 3.0  # a stop this long (bounded ~0.5 s: Redis calls) has its stacks in the API's log


@asynccontextmanager
async def _lifespan(app: Any) -> AsyncIterator[None]:
    """The router's lifespan (inside the app's, which made AppState): in-process jobs' heartbeat, steady GC."""
    st: AppState | None = getattr(app.state, "offload", None)
    if st is not None:
        st.inprocess = InProcess(st.settings, st.redis)
        st.inprocess.start()
    try:
        async with _steady_gc():
            yield
    finally:
        faulthandler.dump_traceback_later(STOP_STACKS_AFTER_S)
        try:
            if st is not None and st.inprocess is not None:
                await st.inprocess.stop()
        finally:
            faulthandler.cancel_dump_traceback_later()


@asynccontextmanager
async def _steady_gc() -> AsyncIterator[None]:
    """Freeze every object alive once the app has started, for the process's life.

    Otherwise each full collection scans them all (modules, pydantic schemas, routes: ~60k objects), ~40 ms
    on 2 shared cores, about every 0.3 s under load: that was the p99 of every endpoint (wrk -c32, ABAB: p99
    48 -> 11 ms, +12 % req/s; benchmarks/README.md). Collections then scan only request-time objects.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()  # an app built and stopped inside a longer-lived process (tests) leaves nothing pinned


router = APIRouter(lifespan=_lifespan)

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)]
_IN_FLIGHT_STATES = frozenset({"pending", "running"})


@dataclass
class AppState:
    """What the routes share: settings, the one async Redis client, the metrics registry."""

    settings: Settings
    redis: Redis
    registry: Registry
    inprocess: InProcess | None = None  # set by the router's lifespan


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.offload
    return state


def _check_same_body(idem: Idempotency, prior: dict[str, Any]) -> None:
    # the IETF Idempotency-Key draft: a key reused with another payload is a client error, not a replay
    if not idem.matches(prior):
        raise HTTPException(
            422, "this Idempotency-Key was already used with a different request body; use a new key"
        )


async def _replay(redis: Redis, idem: Idempotency, prior: dict[str, Any]) -> SourceCreated:
    """The answer to a repeated Idempotency-Key on noop/sync: the first request's source, as it is now."""
    _check_same_body(idem, prior)
    source_id = str(prior["source_id"])
    raw = await read_source(redis, source_id)
    if raw is None:
        raise HTTPException(
            409, "the request with this Idempotency-Key expired or did not complete; use a new key"
        )
    if raw.get("state") in _IN_FLIGHT_STATES:
        raise HTTPException(409, "a request with this Idempotency-Key is still in progress")
    if raw.get("state") == "dead":
        raise HTTPException(502, f"backfill failed: {raw.get('last_error', 'unknown error')}")
    out = SourceOut.from_hash(source_id, raw)
    return SourceCreated(
        source_id=source_id,
        state=out.state,
        result_digest=out.result_digest,
        pages=out.pages,
        attempts=out.attempts or None,
    )


@router.post("/noop/sources", status_code=201, response_model=SourceCreated, response_model_exclude_none=True)
async def create_noop(
    body: SourceIn, request: Request, idempotency_key: IdempotencyKey = None
) -> SourceCreated:
    """Critical path only: validate, create the source record, answer. The floor."""
    st = _state(request)
    source_id = new_id()
    idem = Idempotency.of("noop", body, idempotency_key)
    fields = source_fields(body, "noop", "created")
    prior = await create_source(
        st.redis, source_id, fields, st.settings.record_ttl_s, idem, st.settings.idempotency_ttl_s
    )
    if idem is not None and prior is not None:
        return await _replay(st.redis, idem, prior)
    return SourceCreated(source_id=source_id, state="created")


@router.post("/sync/sources", status_code=201, response_model=SourceCreated, response_model_exclude_none=True)
async def create_sync(
    body: SourceIn, request: Request, idempotency_key: IdempotencyKey = None
) -> SourceCreated:
    """Critical path + the backfill inline (transient failures retried inline with the worker's back-off)."""
    st = _state(request)
    cfg = st.settings
    source_id = new_id()
    idem = Idempotency.of("sync", body, idempotency_key)
    fields = source_fields(body, "sync", "pending")
    prior = await create_source(st.redis, source_id, fields, cfg.record_ttl_s, idem, cfg.idempotency_ttl_s)
    if idem is not None and prior is not None:
        return await _replay(st.redis, idem, prior)
    result: BackfillResult | None = None
    for attempt in range(1, cfg.max_tries + 1):
        try:
            result = await run_backfill(
                st.redis,
                source_id,
                cfg.work,
                attempt,
                ttl_s=cfg.record_ttl_s,
                user_id=body.user_id,
                name=body.name,
            )
            break
        except BackfillError as err:
            if isinstance(err, PoisonBackfillError) or attempt == cfg.max_tries:
                await mark_source(
                    st.redis,
                    source_id,
                    cfg.record_ttl_s,
                    state="dead",
                    dead_ts=f"{time.time():.3f}",
                    last_error=str(err),
                )
                log.info("sync backfill dead", extra={"source_id": source_id, "attempt": attempt})
                # the upstream (the source being backfilled) failed, not our request: 502
                raise HTTPException(
                    502, f"backfill failed: {err}", headers={"X-Source-Id": source_id}
                ) from err
            await asyncio.sleep(backoff_s(attempt, cfg.retry_base_s, cfg.retry_cap_s))
    assert result is not None  # the loop either breaks with a result or raises
    return SourceCreated(
        source_id=source_id,
        state="done",
        result_digest=result.result_digest,
        pages=result.pages,
        attempts=result.attempt,
    )


@router.post("/offload/sources", status_code=202, response_model=JobAccepted)
async def create_offload(
    body: SourceIn, request: Request, idempotency_key: IdempotencyKey = None
) -> JobAccepted:
    """Critical path + enqueue one arq job, all in one Redis round trip; answer 202 with the job id."""
    st = _state(request)
    cfg = st.settings
    if cfg.inject_delay_ms > 0:  # fault knob for the CI gate: a slower critical path must be caught
        await asyncio.sleep(cfg.inject_delay_ms / 1000)
    source_id, job_id = new_id(), new_id()
    now_ms = int(time.time() * 1000)
    idem = Idempotency.of("offload", body, idempotency_key)
    result = await enqueue_backfill(
        st.redis,
        source_id=source_id,
        job_id=job_id,
        now_ms=now_ms,
        source_fields=source_fields(body, "offload", "pending", job_id=job_id),
        record_ttl_s=cfg.record_ttl_s,
        idem=idem,
        idempotency_ttl_s=cfg.idempotency_ttl_s,
    )
    if idem is not None and result.outcome == "idempotent":
        _check_same_body(idem, {"body_hash": result.body_hash})
    return JobAccepted(source_id=result.source_id, job_id=result.job_id)


@router.post("/inprocess/sources", status_code=202, response_model=JobAccepted)
async def create_inprocess(
    body: SourceIn, request: Request, background: BackgroundTasks, idempotency_key: IdempotencyKey = None
) -> JobAccepted:
    """Critical path + the backfill as a FastAPI BackgroundTasks task of this process, run after the 202.

    Recorded like an arq job (service/inprocess.py), so a job this process never finishes shows as lost.
    """
    st = _state(request)
    if st.inprocess is None:  # pragma: no cover - the router's lifespan always sets it
        raise HTTPException(503, "in-process jobs are not available")
    source_id, job_id = new_id(), new_id()
    idem = Idempotency.of("inprocess", body, idempotency_key)
    fields = source_fields(body, "inprocess", "pending", job_id=job_id)
    prior = await st.inprocess.accept(source_id, job_id, fields, idem)
    if idem is not None and prior is not None:
        _check_same_body(idem, prior)
        if not prior:
            raise HTTPException(409, "the request with this Idempotency-Key expired; use a new key")
        return JobAccepted(source_id=str(prior["source_id"]), job_id=str(prior["job_id"]))
    background.add_task(st.inprocess.run, source_id, job_id, body.user_id, body.name)
    return JobAccepted(source_id=source_id, job_id=job_id)


@router.get("/sources/{source_id}", response_model=SourceOut)
async def get_source(source_id: str, request: Request) -> SourceOut:
    """The source and its backfill state."""
    if len(source_id) > 64:
        raise HTTPException(404, "unknown source")
    raw = await read_source(_state(request).redis, source_id)
    if raw is None:
        raise HTTPException(404, "unknown source")
    return SourceOut.from_hash(source_id, raw)


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    """Redis reachable (else 503) and the live workers with the age of the freshest heartbeat.

    One round trip on one sorted set (ZCOUNT + the top entry): O(log N), never a SCAN of the keyspace.
    """
    redis = _state(request).redis
    now_ms = int(time.time() * 1000)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcount(keys.WORKERS, now_ms - keys.HEARTBEAT_TTL_S * 1000, "+inf")
        pipe.zrange(keys.WORKERS, -1, -1, withscores=True)
        live, freshest = await pipe.execute()
    age_s = max(now_ms - freshest[0][1], 0) / 1000 if live and freshest else None
    body = {
        "status": "ok",
        "redis": "ok",
        "workers": int(live),
        "worker_heartbeat_age_s": round(age_s, 3) if age_s is not None else None,
    }
    return JSONResponse(body)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus text: per-route counts and latency, job counters, queue depth (Redis parts only when up)."""
    st = _state(request)
    stats: dict[str, int] | None = None
    queue: dict[str, int] = {}
    try:
        async with st.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.STATS)
            pipe.zcard(default_queue_name)
            pipe.zcount(default_queue_name, "-inf", int(time.time() * 1000))
            pipe.hlen(keys.DLQ)
            raw_stats, depth, ready, dlq = await pipe.execute()
        stats = {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw_stats.items()}
        queue = {"depth": int(depth), "ready": int(ready), "dlq_size": int(dlq)}
        redis_up = 1
    except RedisError:
        redis_up = 0
    return Response(render(st.registry, stats, queue, bool(redis_up)), media_type=CONTENT_TYPE)

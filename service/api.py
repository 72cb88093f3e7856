"""The sample API under test (FastAPI). `python -m service.api` serves it with uvicorn.

Factory: `create_app(settings)`; also `uvicorn --factory service.api:create_app`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

import service.admin
from service.jsonlog import log_config
from service.metrics import Registry
from service.middleware import BodyLimitMiddleware, MetricsMiddleware
from service.routes import AppState, router
from service.settings import Settings, get_settings, redact_url

log = logging.getLogger("service.api")

# enough for every in-flight request to hold one connection at a time; beyond it a request waits up to
# redis_timeout_s for a free one and then gets a 503 (back-pressure instead of unbounded sockets)
MAX_REDIS_CONNECTIONS = 512


def make_redis(settings: Settings) -> Redis:
    """The process's async Redis client: bounded connect/read timeouts, no retry loop, bounded pool."""
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=MAX_REDIS_CONNECTIONS,
        timeout=settings.redis_timeout_s,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        socket_keepalive=True,  # a peer that vanished (no FIN) is noticed instead of waited on
        retry_on_timeout=False,
    )
    return Redis(connection_pool=pool)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app: routes, admin router, body limit, metrics, JSON errors, one Redis client per process."""
    cfg = settings or get_settings()
    registry = Registry()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = make_redis(cfg)
        app.state.offload = AppState(settings=cfg, redis=redis, registry=registry)
        log.info("api started", extra={"redis_url": redact_url(cfg.redis_url), "work": cfg.work.model_dump()})
        try:
            yield
        finally:
            # the pool was passed in, so aclose() alone would leave its sockets open
            await redis.aclose(close_connection_pool=True)

    app = FastAPI(title="offload-bench sample API", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.include_router(router)
    app.include_router(service.admin.router)
    # added last = outermost: the body limit answers 413 before anything parses the body
    app.add_middleware(MetricsMiddleware, registry=registry)
    app.add_middleware(BodyLimitMiddleware, max_bytes=cfg.max_body_bytes)

    @app.exception_handler(RedisError)
    async def redis_unavailable(request: Request, exc: RedisError) -> JSONResponse:
        log.warning("redis error", extra={"path": request.url.path, "error": f"{type(exc).__name__}: {exc}"})
        return JSONResponse({"detail": f"redis unavailable: {type(exc).__name__}"}, status_code=503)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes each error's `input`, and crashes (500) when that input is non-UTF-8 bytes;
        # type, location and message are what a client needs
        errors = [
            {
                "type": str(e.get("type", "")),
                "loc": [str(p) for p in e.get("loc", ())],
                "msg": str(e.get("msg", "")),
            }
            for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(Exception)
    async def last_resort(request: Request, exc: Exception) -> JSONResponse:
        # never expected: every known error path answers above; logged so a test or an operator sees it
        log.error("unhandled error", exc_info=exc, extra={"path": request.url.path})
        return JSONResponse({"detail": "internal error"}, status_code=500)

    return app


def main() -> None:
    """Serve the API with uvicorn on settings.api_host:api_port (access log off: it costs CPU under load)."""
    import uvicorn

    try:
        settings = get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        sys.stderr.write(
            f"error: invalid API settings: {problems} (see the OFFLOAD_* environment variables)\n"
        )
        sys.exit(2)
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        access_log=False,
        log_config=log_config(settings.log_level),
        server_header=False,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()

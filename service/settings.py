"""One typed settings object per process, from OFFLOAD_* environment variables (REDIS_URL also accepted)."""

from __future__ import annotations

from functools import lru_cache
from typing import Final, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import AliasChoices, Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_ORPHAN_MARGIN_S: Final = 1.0


class WorkProfile(BaseSettings):
    """The backfill's work: pages, simulated I/O per page, real CPU per page, failure rates. Seeded."""

    model_config = SettingsConfigDict(env_prefix="OFFLOAD_", extra="ignore")

    pages: int = Field(10, ge=0, le=10_000, description="pages fetched per backfill")
    io_ms: float = Field(50.0, ge=0, le=60_000, description="mean simulated I/O wait per page (log-normal)")
    io_sigma: float = Field(0.5, ge=0, le=3, description="log-normal shape of the I/O wait")
    cpu_ms: float = Field(3.0, ge=0, le=10_000, description="real CPU burnt per page (blocks the event loop)")
    transient_rate: float = Field(
        0.0, ge=0, le=1, description="chance an attempt fails transiently (retried)"
    )
    poison_rate: float = Field(
        0.0, ge=0, le=1, description="chance a source never succeeds (ends in the DLQ)"
    )
    seed: int = Field(42, description="seed of every random draw: same input, same result")


class Settings(BaseSettings):
    """Everything the API and the worker read from the environment."""

    model_config = SettingsConfigDict(env_prefix="OFFLOAD_", extra="ignore")

    redis_url: str = Field(
        "redis://127.0.0.1:6379/0", validation_alias=AliasChoices("OFFLOAD_REDIS_URL", "REDIS_URL")
    )
    redis_timeout_s: float = Field(
        0.5, gt=0, le=30, description="socket connect/read timeout: bounded on outage"
    )

    # API
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=0, le=65535)
    max_body_bytes: int = Field(16_384, ge=256, description="larger bodies get 413")
    admin_token: str | None = Field(None, description="bearer token for /admin/*; unset = admin disabled")
    inject_delay_ms: float = Field(
        0.0, ge=0, le=60_000, description="fault knob: delay added to offload's path"
    )
    idempotency_ttl_s: int = Field(86_400, ge=1)

    # worker
    max_jobs: int = Field(200, ge=1, le=10_000, description="concurrent jobs per worker process")
    adaptive_jobs: bool = Field(
        True, description="claim new jobs only while the event loop's lag stays under loop_lag_bound_ms"
    )
    loop_lag_bound_ms: float = Field(
        100.0,  # a fifth of redis_timeout_s's 0.5 s; 50 ms cost ~12 % of a CPU-bound worker's goodput
        gt=0,
        le=10_000,
        description="adaptive_jobs: the loop lag above which the worker runs fewer jobs",
    )
    max_tries: int = Field(5, ge=1, le=100)
    retry_base_s: float = Field(0.5, gt=0, description="first back-off; doubles per try, full jitter")
    retry_cap_s: float = Field(30.0, gt=0)
    job_timeout_s: float = Field(60.0, gt=0)
    orphan_margin_s: float = Field(
        5.0,
        description="after SIGKILL a job re-runs within timeout + margin; arq's own timeout sits at half of it",
    )
    shutdown_grace_s: float = Field(20.0, ge=0, description="SIGTERM: time in-flight jobs get to finish")
    poll_delay_s: float = Field(0.05, gt=0, le=5)
    record_ttl_s: int = Field(86_400, ge=60, description="TTL of lifecycle records and source records")
    allow_evicting_redis: bool = Field(
        False, description="run even on a Redis whose maxmemory-policy is allkeys-* (queued jobs may vanish)"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="worker log level; WARNING drops the per-job started/succeeded lines (throughput)"
    )

    work: WorkProfile = Field(default_factory=WorkProfile)

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                f"redis_url must start with redis://, rediss:// or unix://, got {self.redis_url!r}"
            )
        if self.retry_cap_s < self.retry_base_s:
            raise ValueError("retry_cap_s must be >= retry_base_s")
        return self

    @field_validator("orphan_margin_s")
    @classmethod
    def _real_margin(cls, value: float, info: ValidationInfo) -> float:
        # our deadline fires at job_timeout_s, arq's at job_timeout_s + margin/2 (and arq deletes a job whose
        # timeout fires): half the margin must cover recording the outcome (a Redis round trip or two)
        least_s = max(MIN_ORPHAN_MARGIN_S, 2 * float(info.data.get("redis_timeout_s", 0)))
        if value < least_s:
            raise ValueError(
                f"must be >= {least_s:g} (the larger of {MIN_ORPHAN_MARGIN_S:g} s and 2 x redis_timeout_s), "
                f"got {value:g}"
            )
        return value


def redact_url(url: str) -> str:
    """The URL with its password (if any) replaced by ***: for logs and anything shown or stored."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings (read once)."""
    return Settings()

"""Request and response bodies of the sources API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_EXTRA_FIELDS = 16  # further fields are accepted (and ignored) but bounded


class SourceIn(BaseModel):
    """POST body: who connects which source. Extra fields are allowed, up to MAX_EXTRA_FIELDS."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=False)

    user_id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _bounded_extras(self) -> SourceIn:
        extra = self.model_extra or {}
        if len(extra) > MAX_EXTRA_FIELDS:
            raise ValueError(f"at most {MAX_EXTRA_FIELDS} extra fields are allowed, got {len(extra)}")
        return self


class SourceCreated(BaseModel):
    """201 answer of noop and sync."""

    source_id: str
    state: str
    result_digest: str | None = None
    pages: int | None = None
    attempts: int | None = None


class JobAccepted(BaseModel):
    """202 answer of offload."""

    source_id: str
    job_id: str


class SourceOut(BaseModel):
    """GET /sources/{id}: the source and its backfill state."""

    source_id: str
    user_id: str
    name: str
    mode: str
    state: str  # created (noop) | pending | running | done | dead
    attempts: int
    job_id: str | None = None
    created_ts: float | None = None
    started_ts: float | None = None
    done_ts: float | None = None
    dead_ts: float | None = None
    result_digest: str | None = None
    pages: int | None = None
    last_error: str | None = None

    @classmethod
    def from_hash(cls, source_id: str, raw: dict[str, Any]) -> SourceOut:
        """Build from the source hash (decoded strings)."""

        def num(key: str) -> float | None:
            value = raw.get(key)
            return float(value) if value not in (None, "") else None

        pages = raw.get("pages")
        return cls(
            source_id=source_id,
            user_id=raw.get("user_id", ""),
            name=raw.get("name", ""),
            mode=raw.get("mode", ""),
            state=raw.get("state", "pending"),
            attempts=int(raw.get("attempts") or 0),
            job_id=raw.get("job_id") or None,
            created_ts=num("created_ts"),
            started_ts=num("started_ts"),
            done_ts=num("done_ts"),
            dead_ts=num("dead_ts"),
            result_digest=raw.get("result_digest") or None,
            pages=int(pages) if pages not in (None, "") else None,
            last_error=raw.get("last_error") or None,
        )

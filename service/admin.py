"""Admin endpoints for the dead-letter queue (list, redrive one, redrive all, purge), behind a bearer token."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/admin", tags=["admin"])

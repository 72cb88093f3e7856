"""The target inside Locust: which request each mode sends and what answer counts as success.

The target file comes from --target (default: the built-in sample service). Each load process builds its
requests itself (targets.request: a few string joins per request) and checks the answers here.
"""

from __future__ import annotations

import functools
import json
import random
import urllib.parse
from pathlib import Path
from typing import Any, Final

from loadtests._payload import PAYLOAD_KINDS
from targets import Target, load_target
from targets.request import Request, RequestBuilder

DETAIL_CHARS: Final = 120
MISSING_JOB_ID: Final = "no job id in the answer"
DUPLICATE_JOB_ID: Final = "duplicate job id"
SOURCE_ID_BODY_MAX: Final = 4096  # answers up to this size are decoded for a source_id (samples' column)


@functools.lru_cache(maxsize=8)
def load(path: str) -> tuple[Target, Path]:
    """The target of --target (empty: the built-in one), read once per process; TargetError when unusable."""
    return load_target(path or None)


def values_for(host: str, redis_url: str) -> dict[str, str]:
    """Start-time placeholder values as the load generator knows them (from --host and --redis-url)."""
    import sys

    api = urllib.parse.urlsplit(host)
    rds = urllib.parse.urlsplit(redis_url or "redis://127.0.0.1:6379/0")
    return {
        "port": str(api.port or (443 if api.scheme == "https" else 80)),
        "redis_url": redis_url,
        "redis_host": rds.hostname or "127.0.0.1",
        "redis_port": str(rds.port or 6379),
        "redis_password": urllib.parse.unquote(rds.password or ""),
        "python": sys.executable,
    }


class Padding:
    """--payload-mix: extra bytes added to JSON object bodies, drawn per request (seeded)."""

    def __init__(self, mix: dict[str, float], seed: int) -> None:
        self._kinds = list(mix)
        self._weights = [mix[k] for k in self._kinds]
        self._rng = random.Random(seed)
        self._extra = {
            k: (f'"kind":"{k}","description":"{"x" * n}"' if n else "") for k, n in PAYLOAD_KINDS.items()
        }

    def next(self) -> str:
        """The next request's extra JSON members ("" for none)."""
        if len(self._kinds) == 1:
            return self._extra[self._kinds[0]]
        return self._extra[self._rng.choices(self._kinds, self._weights)[0]]


class ModeClient:
    """One mode of the target in one load process: builds requests, checks answers, sees duplicate job ids."""

    def __init__(self, target: Target, mode: str, values: dict[str, str], proc_index: int) -> None:
        self.builder = RequestBuilder(mode, target.modes[mode], values, proc_index)
        self.name = self.builder.path_name
        self._seen: set[str] = set()

    def request(self, padding: Padding | None) -> Request:
        """The next request of this mode."""
        return self.builder.build(padding.next() if padding is not None else "")

    def check(self, resp: Any) -> None:
        """Mark success or a failure with a short reason; job ids go into the request context."""
        status = resp.status_code
        if not status:
            return  # no response at all: Locust reports the connection error itself
        builder = self.builder
        if status not in builder.expect:
            detail = None
            try:
                data = resp.json()
                detail = data.get("detail") if isinstance(data, dict) else None
            except ValueError:
                pass
            want = "/".join(str(s) for s in sorted(builder.expect))
            resp.failure(
                f"HTTP {status}, expected {want}" + (f": {str(detail)[:DETAIL_CHARS]}" if detail else "")
            )
            return
        content = resp.content or b""
        if not builder.job_path and len(content) > SOURCE_ID_BODY_MAX:
            resp.success()  # a large answer without a job id to read: not worth decoding
            return
        try:
            data = json.loads(content or b"null")
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("source_id"), str):
            resp.request_meta["context"]["source_id"] = data["source_id"]  # the sample service's id
        if not builder.job_path:
            resp.success()
            return
        context = resp.request_meta["context"]
        job_id = builder.job_id(data)
        if job_id is None:
            resp.failure(f"{MISSING_JOB_ID} ({'.'.join(builder.job_path)})")
            return
        context["job_id"] = job_id
        if job_id in self._seen:
            resp.failure(DUPLICATE_JOB_ID)
            return
        self._seen.add(job_id)
        resp.success()

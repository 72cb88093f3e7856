"""One mode's request, compiled once: building a request costs a few string joins (it runs per request)."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from targets import placeholders as ph
from targets.model import Mode

# {seq} is unique across load processes: each process counts in its own block of this size
SEQ_BLOCK = 1_000_000_000


def _fill(parts: list[str], seq: int, uid: str | None) -> str:
    if len(parts) == 1:
        return parts[0]
    out = [parts[0]]
    for i in range(1, len(parts), 2):
        out.append(str(seq) if parts[i] == "seq" else (uid or ""))
        out.append(parts[i + 1])
    return "".join(out)


@dataclass(frozen=True)
class Request:
    """What one request sends."""

    method: str
    path: str
    body: str | None  # encoded by the HTTP client (UTF-8)
    headers: dict[str, str]


class RequestBuilder:
    """Builds the requests of one mode; values are the start-time placeholders' values."""

    def __init__(self, name: str, mode: Mode, values: Mapping[str, str], proc_index: int = 0) -> None:
        self.name = name
        self.method = mode.method
        self.expect = frozenset(mode.expect)
        self.job_path: tuple[str, ...] = tuple(mode.job_id.split(".")) if mode.job_id else ()
        self._path = ph.split_marked(ph.mark_request_time(mode.path, values), escaped=False)
        self._headers = {
            ph.mark_request_time(k, values): ph.split_marked(ph.mark_request_time(v, values), escaped=False)
            for k, v in mode.headers.items()
        }
        self._is_object = isinstance(mode.json_body, dict) and bool(mode.json_body)
        self._body: list[str] | None = None
        if mode.json_body is not None:
            marked = ph.map_strings(mode.json_body, lambda s: ph.mark_request_time(s, values))
            self._body = ph.split_marked(json.dumps(marked, separators=(",", ":")), escaped=True)
            if not any(k.lower() == "content-type" for k in self._headers):
                self._headers["Content-Type"] = ["application/json"]
        elif mode.body is not None:
            self._body = ph.split_marked(ph.mark_request_time(mode.body, values), escaped=False)
        self._seq = itertools.count(proc_index * SEQ_BLOCK + 1)
        parts = [self._path, *self._headers.values(), self._body or []]
        self._needs_uuid = any("uuid" in p[1::2] for p in parts)

    @property
    def path_name(self) -> str:
        """The templated path, for request names (placeholders shown as {seq}/{uuid})."""
        return "".join(p if i % 2 == 0 else "{" + p + "}" for i, p in enumerate(self._path))

    def build(self, extra_json: str = "") -> Request:
        """The next request; extra_json (`"k":v,...`) is added to a JSON object body (payload padding)."""
        seq = next(self._seq)
        uid = uuid.uuid4().hex if self._needs_uuid else None
        body: str | None = None
        if self._body is not None:
            text = _fill(self._body, seq, uid)
            if extra_json and self._is_object:
                text = text[:-1] + "," + extra_json + "}"
            body = text
        return Request(
            self.method,
            _fill(self._path, seq, uid),
            body,
            {k: _fill(v, seq, uid) for k, v in self._headers.items()},
        )

    def job_id(self, data: Any) -> str | None:
        """The job id at the mode's dotted path in a decoded JSON answer; None when absent or empty."""
        for key in self.job_path:
            if isinstance(data, dict):
                data = data.get(key)
            elif isinstance(data, list) and key.isdigit() and int(key) < len(data):
                data = data[int(key)]
            else:
                return None
        if isinstance(data, str | int) and not isinstance(data, bool) and str(data):
            return str(data)
        return None

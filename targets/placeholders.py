"""{placeholder} expansion in target files: checked at load time, compiled once, cheap per request.

Start-time placeholders are known when the stack starts ({port}, {redis_url}, {redis_host}, {redis_port},
{redis_password} (empty when none: the embedded Redis has a random one per start), {python}); request-time ones change per request ({seq}, {uuid}); {job_id} only in the http tracker's
status_path. `{{` and `}}` are literal braces.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

START_TIME: Final = ("port", "redis_url", "redis_host", "redis_port", "redis_password", "python")
REQUEST_TIME: Final = ("seq", "uuid")
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
# request-time placeholders survive json.dumps as this escaped marker, so a serialized body is split once
_MARK: Final = "\x01"
_MARKED = re.compile(r"\\u0001(" + "|".join(REQUEST_TIME) + r")\\u0001")


class PlaceholderError(ValueError):
    """An unknown or malformed {placeholder}; the message names it."""


def names(text: str) -> Iterator[str]:
    """The placeholder names in text (PlaceholderError on a stray brace)."""
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        if match.group(1) is None:
            raise PlaceholderError(f"stray {token!r} (write {token * 2} for a literal brace)")
        yield match.group(1)


def check(text: str, allowed: tuple[str, ...]) -> None:
    """PlaceholderError unless every placeholder of text is in allowed."""
    for name in names(text):
        if name not in allowed:
            known = ", ".join("{" + n + "}" for n in allowed)
            raise PlaceholderError(f"unknown placeholder {{{name}}} (known here: {known})")


def expand(text: str, values: Mapping[str, str], keep: tuple[str, ...] = ()) -> str:
    """Replace placeholders with values; names in keep stay as {name} (expanded later)."""

    def repl(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{{" if keep else "{"
        if token == "}}":
            return "}}" if keep else "}"
        name = match.group(1)
        if name in keep:
            return token
        if name is None or name not in values:
            raise PlaceholderError(f"no value for {token}")
        return values[name]

    return _TOKEN.sub(repl, text)


def walk_strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(dotted key, string) for every string inside a JSON-like value (dict keys included)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}.{key}", str(key)
            yield from walk_strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from walk_strings(item, f"{path}[{i}]")


def map_strings(value: Any, fn: Any) -> Any:
    """A copy of a JSON-like value with fn applied to every string (dict keys included)."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        return {fn(str(k)): map_strings(v, fn) for k, v in value.items()}
    if isinstance(value, list):
        return [map_strings(v, fn) for v in value]
    return value


def mark_request_time(text: str, values: Mapping[str, str]) -> str:
    """Expand start-time placeholders; request-time ones become markers that survive json.dumps."""

    def repl(match: re.Match[str]) -> str:
        token, name = match.group(0), match.group(1)
        if token in ("{{", "}}"):
            return token[0]
        if name in REQUEST_TIME:
            return f"{_MARK}{name}{_MARK}"
        if name is None or name not in values:
            raise PlaceholderError(f"no value for {token}")
        return values[name]

    return _TOKEN.sub(repl, text)


def split_marked(text: str, escaped: bool) -> list[str]:
    """Split text at request-time markers: [literal, name, literal, name, ..., literal].

    escaped: the text went through json.dumps (markers are \\u0001-escaped) or not (raw markers).
    """
    if escaped:
        return _MARKED.split(text)
    return re.split(_MARK + "(" + "|".join(REQUEST_TIME) + ")" + _MARK, text)

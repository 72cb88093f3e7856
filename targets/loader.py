"""Read a target file: TOML -> Target, every problem one line naming the file and the key."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from targets import placeholders as ph
from targets.model import Target

BUILTIN_NAME = "builtin.toml"


class TargetError(Exception):
    """A target file that cannot be used; the message is one line for people."""


def builtin_path() -> Path:
    """The built-in target file: the sample service shipped with offload-bench."""
    return Path(str(resources.files("targets") / BUILTIN_NAME))


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _check_placeholders(raw: dict[str, Any], where: str) -> None:
    service_ok = ph.START_TIME
    request_ok = ph.START_TIME + ph.REQUEST_TIME
    checks: list[tuple[str, str, tuple[str, ...]]] = []
    service = raw.get("service") or {}
    for key in ("api", "worker", "url", "ready"):
        if isinstance(service.get(key), str):
            checks.append((f"service.{key}", service[key], service_ok if key != "ready" else ()))
    for key, value in (service.get("env") or {}).items():
        checks.append((f"service.env.{key}", str(value), service_ok))
    if isinstance(raw.get("url"), str):
        checks.append(("url", raw["url"], service_ok))
    for name, mode in (raw.get("modes") or {}).items():
        if not isinstance(mode, dict):
            continue
        for key in ("path", "body"):
            if isinstance(mode.get(key), str):
                checks.append((f"modes.{name}.{key}", mode[key], request_ok))
        for key, value in (mode.get("headers") or {}).items():
            checks.append((f"modes.{name}.headers.{key}", str(value), request_ok))
        if "json" in mode:
            checks += [(k, s, request_ok) for k, s in ph.walk_strings(mode["json"], f"modes.{name}.json")]
    jobs = raw.get("jobs") or {}
    if isinstance(jobs.get("status_path"), str):
        checks.append(("jobs.status_path", jobs["status_path"], ("job_id",)))
    for key, text, allowed in checks:
        try:
            ph.check(text, allowed)
        except ph.PlaceholderError as exc:
            raise TargetError(f"{where}: {key}: {exc}") from None


def parse_target(text: str, where: str) -> Target:
    """A Target from TOML text; where names the file in errors."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TargetError(f"{where}: not valid TOML: {exc}") from None
    _check_placeholders(raw, where)
    try:
        return Target.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "bool_type":
            msg = "must be true or false"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise TargetError(f"{where}: {_loc(tuple(err['loc']))}: {msg}{more}") from None


def load_target(path: Path | str | None) -> tuple[Target, Path]:
    """(Target, its file) for path, or the built-in target when path is None; TargetError when unusable."""
    file = Path(path) if path is not None else builtin_path()
    try:
        text = file.read_text()
    except OSError as exc:
        raise TargetError(f"cannot read target file {file}: {exc.strerror or exc}") from None
    return parse_target(text, str(file)), file.resolve()

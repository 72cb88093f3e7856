"""The run's configuration: one validated object from defaults, an optional TOML file and CLI options."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from runfolder.load import LoadSettings
from service.settings import WorkProfile
from targets import Target, TargetError, load_target
from targets.trackers import MissingLibrary, check_library

DEFAULT_CONFIG_FILE = Path("offload-bench.toml")
Mode = Literal["noop", "sync", "inprocess", "offload"]
ALL_MODES: tuple[Mode, ...] = ("noop", "sync", "inprocess", "offload")  # the built-in target's modes
# what a run of the built-in target measures without --modes: inprocess (BackgroundTasks in the API process) is
# opt-in, so the default comparison and capacity search keep their length and their meaning
DEFAULT_MODES: tuple[Mode, ...] = ("noop", "sync", "offload")
_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*$")


class ConfigError(Exception):
    """A bad option or config value; the message is one line naming the option."""


def parse_duration_s(value: str | float | int) -> float:
    """Seconds from 90, "90", "90s", "1m30s", "2m", "1h"; ConfigError otherwise."""
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(value)
        if not value.strip() or not match or not any(match.groups()):
            raise ConfigError(f"bad duration {value!r} (use e.g. 30s, 2m, 1m30s)")
        h, m, s = (float(g) if g else 0.0 for g in match.groups())
        seconds = h * 3600 + m * 60 + s
    if seconds < 0:
        raise ConfigError(f"bad duration {value!r}: must not be negative")
    return seconds


class RunConfig(LoadSettings):
    """Everything `offload-bench run` needs: the load settings (declared once, in runfolder/load.py) plus what
    the stack and the run need. Every field can come from the config file or a CLI option (bench/run/options.py).
    """

    model_config = ConfigDict(extra="forbid")

    target: Path | None = Field(
        None, description="target file: the service to measure (default: the built-in sample service)"
    )
    modes: list[str] = Field(
        default_factory=list,
        description="comma-separated modes of the target (default: all; built-in: noop,sync,offload, +inprocess)",
    )
    workers: int = Field(
        1, ge=0, le=64, description="worker processes: the target's worker command, started N times"
    )
    redis_url: str | None = Field(None, description="an external Redis (default: a private embedded one)")
    host: str | None = Field(
        None, description="an API already running at this URL: start nothing of the service"
    )
    port: int = Field(0, ge=0, le=65535, description="API port (default: a free one)")
    out: Path = Field(Path("reports/runs"), description="where run folders go")
    repeat: int = Field(1, ge=1, le=50, description="run the whole comparison N times (for the gate)")
    faults: list[str] = Field(
        default_factory=list, description="inject a fault in the offload phase (repeatable)"
    )
    locust_args: list[str] = Field(default_factory=list, description="extra Locust arguments (after --)")
    work: WorkProfile = Field(default_factory=WorkProfile)

    @field_validator("modes", mode="before")
    @classmethod
    def _modes(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one mode is needed")
        if len(set(value)) != len(value):
            raise ValueError("a mode is listed twice")
        return value

    @field_validator("duration_s")
    @classmethod
    def _whole_seconds(cls, value: float) -> float:
        if value != int(value):  # Locust's --run-time takes whole seconds: 2.5s would be cut or refused
            raise ValueError(f"must be whole seconds (Locust runs whole seconds), got {value:g}s")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be a URL like http://127.0.0.1:8000")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        if self.expect_workers and self.processes > 1:
            raise ValueError(
                "processes starts local Locust workers; with expect_workers start the workers yourself "
                "(locust -f loadtests/ --worker --master-host ...)"
            )
        if self.warmup_s >= self.duration_s:
            raise ValueError(
                f"warmup_s ({self.warmup_s:g}) must be shorter than duration_s ({self.duration_s:g})"
            )
        return self


def _one_line(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "config"
    more = f" (+{len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{where}: {msg}{more}" if where != "config" else f"{msg}{more}"


def target_of(cfg: RunConfig) -> tuple[Target, Path]:
    """The run's target (its file, or the built-in one) and the file's path; ConfigError when unusable."""
    try:
        target, path = load_target(cfg.target)
        check_library(target.jobs.tracker)  # a queue library's tracker needs its optional extra
    except (TargetError, MissingLibrary) as exc:
        raise ConfigError(str(exc)) from None
    return target, path


def job_modes(cfg: RunConfig) -> list[str]:
    """The run's modes whose answers carry a job id (offload-like: the job side and faults act there)."""
    target, _ = target_of(cfg)
    return [m for m in cfg.modes if target.modes[m].job_id]


def _resolve_modes(cfg: RunConfig) -> None:
    """Default to every mode of the target (the built-in one: DEFAULT_MODES); refuse a mode it does not have."""
    target, path = target_of(cfg)
    if not cfg.modes:
        cfg.modes = list(DEFAULT_MODES) if cfg.target is None else list(target.modes)
    unknown = [m for m in cfg.modes if m not in target.modes]
    if unknown:
        where = "the built-in target" if cfg.target is None else str(path)
        raise ConfigError(f"modes: unknown mode {unknown[0]!r} ({where} has {', '.join(target.modes)})")


def load_config(config_file: Path | None, overrides: dict[str, Any]) -> RunConfig:
    """Defaults < TOML file (given, or ./offload-bench.toml if present) < explicit CLI options."""
    data: dict[str, Any] = {}
    path = config_file or (DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.exists() else None)
    if config_file is not None and not config_file.exists():
        raise ConfigError(f"config file not found: {config_file}")
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from None
        data = data.get("run", data)
    work = dict(data.pop("work", {}) or {})
    work.update(overrides.pop("work", {}))
    for key in ("duration_s", "warmup_s", "drain_timeout_s"):
        for src in (data, overrides):
            if key in src and src[key] is not None:
                src[key] = parse_duration_s(src[key])
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        if work:
            base = RunConfig.model_fields["work"].get_default(call_default_factory=True)
            data["work"] = WorkProfile.model_validate({**base.model_dump(), **work})
        cfg = RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None
    _resolve_modes(cfg)
    return cfg

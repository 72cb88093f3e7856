"""`offload-bench run`'s options, derived from RunConfig (and so from runfolder/load.py's LoadSettings).

Each option defaults to None ("not given"): defaults live only in the declaration, and a config file may set
what the command line does not. Names: the field's, with units dropped where the value is a duration string
(`--duration 30s` for duration_s) and `--fault` (repeatable) for faults.
"""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import Any, Final

import typer

from bench.run.config import RunConfig
from service.settings import WorkProfile

DURATIONS: Final = {"duration_s": "duration", "warmup_s": "warmup", "drain_timeout_s": "drain_timeout"}
RENAMED: Final = {**DURATIONS, "faults": "fault"}
NOT_OPTIONS: Final = {"locust_args", "work"}  # Locust's own arguments go after `--`; work: WORK_OPTIONS
WORK_OPTIONS: Final = ("pages", "io_ms", "cpu_ms", "transient_rate", "poison_rate")
CONFIG_HELP: Final = "TOML file with any of these options (default ./offload-bench.toml)"


def _cli_type(name: str, annotation: Any) -> Any:
    """The type typer parses: durations and Literals as text, lists of modes as one comma-separated text."""
    if name in DURATIONS or name == "modes":
        return str
    if name == "faults":
        return list[str]
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Literal:
        return str
    if args and typing.get_origin(annotation) is not list:  # X | None
        return _cli_type(name, args[0])
    return annotation if annotation in (int, float, str, Path) else str


def _param(cli: str, field: str, annotation: Any, help_text: str) -> inspect.Parameter:
    return inspect.Parameter(
        cli,
        inspect.Parameter.KEYWORD_ONLY,
        default=typer.Option(None, help=help_text),
        annotation=_cli_type(field, annotation) | None,
    )


def run_parameters() -> list[inspect.Parameter]:
    """The typer parameters of `offload-bench run`, one per RunConfig field, work profile field and --config."""
    params = [
        _param(RENAMED.get(name, name), name, field.annotation, field.description or "")
        for name, field in RunConfig.model_fields.items()
        if name not in NOT_OPTIONS
    ]
    work = WorkProfile.model_fields
    params += [
        _param(name, name, work[name].annotation, f"work profile: {work[name].description}")
        for name in WORK_OPTIONS
    ]
    params.append(_param("config", "config", Path, CONFIG_HELP))
    return params


def overrides(options: dict[str, Any], extra_args: list[str]) -> tuple[Path | None, dict[str, Any]]:
    """(config file, load_config overrides) from the parsed options; None values mean "not given"."""
    by_cli = {cli: field for field, cli in RENAMED.items()}
    out: dict[str, Any] = {"work": {k: options[k] for k in WORK_OPTIONS if options.get(k) is not None}}
    for cli, value in options.items():
        if cli in WORK_OPTIONS or cli == "config" or value is None:
            continue
        field = by_cli.get(cli, cli)
        if field == "modes":
            value = [m.strip() for m in value.split(",") if m.strip()]
        elif field == "faults" and not value:
            continue
        out[field] = value
    if extra_args:
        out["locust_args"] = list(extra_args)
    return options.get("config"), out

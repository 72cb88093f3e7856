"""Our custom Locust arguments (also LOCUST_* env vars and locust.conf keys) and their validated view."""

from __future__ import annotations

import argparse
import os
import typing
from dataclasses import dataclass
from typing import Any, Final

from pydantic import ValidationError

from loadtests._payload import parse_mix
from loadtests._target import load as load_target_file
from runfolder import load
from runfolder.load import LOCUST_ARGUMENTS, LOCUST_STANDALONE_DEFAULTS, LoadSettings
from targets import TargetError

EXPECTED_STATUS: Final = {"noop": 201, "sync": 201, "offload": 202}


def _locust_default(name: str) -> Any:
    """This argument's default: the one declaration's, or Locust's standalone one where it must differ."""
    return LOCUST_STANDALONE_DEFAULTS.get(name, load.default(name))


def _choices(name: str) -> tuple[str, ...] | None:
    """The allowed values of a Literal setting (plus the standalone "none" value when it has one)."""
    annotation = LoadSettings.model_fields[name].annotation
    if typing.get_origin(annotation) is not typing.Literal:
        return None
    extra = (LOCUST_STANDALONE_DEFAULTS[name],) if name in LOCUST_STANDALONE_DEFAULTS else ()
    return (*extra, *typing.get_args(annotation))


def add_arguments(parser: Any) -> None:
    """Register the offload-bench arguments on Locust's parser (init_command_line_parser listener).

    The load settings come from runfolder/load.py (name, type, default, help); the rest are Locust-side only.
    """
    # on the parser itself, not a group: only LocustArgumentParser.add_argument knows include_in_web_ui
    group = parser
    group.add_argument(
        "--target",
        default="",
        env_var="LOCUST_TARGET",
        help="target file: the service's modes and job tracker (default: the built-in sample service)",
    )
    group.add_argument(
        "--mode",
        default="",
        env_var="LOCUST_MODE",
        help="a mode of the target, e.g. noop | sync | offload for the built-in one (default: its first)",
    )
    for name in LOCUST_ARGUMENTS:
        kind = LoadSettings.model_fields[name].annotation
        group.add_argument(
            "--" + name.replace("_", "-"),
            type=kind if kind in (int, float) else str,
            choices=_choices(name),
            default=_locust_default(name),
            env_var="LOCUST_" + name.upper(),
            help=load.description(name),
        )
    group.add_argument(
        "--run-dir",
        default="",
        env_var="LOCUST_RUN_DIR",
        help="run folder to write into (default: a new reports/runs/<id>/ plus the report)",
    )
    group.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL", os.environ.get("OFFLOAD_REDIS_URL", "")),
        env_var="LOCUST_REDIS_URL",
        # a secret (its password): Locust's is_secret only masks the form field and still writes the value
        # into the page (window.templateArgs), so the web UI never gets it; it is set at launch only
        is_secret=True,
        include_in_web_ui=False,
        help="offload: Redis of the service, for queue depth and job records (default $REDIS_URL)",
    )
    group.add_argument(
        "--capture",
        choices=("on", "off"),
        default="on",
        env_var="LOCUST_CAPTURE",
        include_in_web_ui=False,
        help="write raw samples (off only to measure what capturing costs)",
    )
    # set by the master at test start, shipped to workers with the spawn message: arrival streams in total
    group.add_argument("--ob-streams", type=int, default=0, include_in_web_ui=False, help=argparse.SUPPRESS)


@dataclass(frozen=True)
class LoadOptions:
    """The validated offload-bench options of one test."""

    mode: str
    target: str  # the target file ("" = the built-in one)
    arrival_rate: float
    arrival: str
    seed: int
    max_in_flight: int
    late_threshold_ms: float
    shape: str
    payload_mix: dict[str, float]
    run_dir: str
    redis_url: str
    drain_timeout_s: float
    capture: bool
    streams: int

    @property
    def model(self) -> str:
        """closed | open."""
        return "open" if self.arrival_rate > 0 else "closed"

    @property
    def path(self) -> str:
        """The endpoint of this mode."""
        return load_target_file(self.target)[0].modes[self.mode].path

    @property
    def job_mode(self) -> bool:
        """True when this mode's answers carry a job id (the job side runs)."""
        return load_target_file(self.target)[0].modes[self.mode].job_id is not None


def load_options(parsed: Any) -> LoadOptions:
    """Validate Locust's parsed options into LoadOptions; ValueError with a one-line message when bad.

    The bounds are the declaration's (runfolder/load.py): the same checks as `offload-bench run`'s.
    """
    try:
        target, _ = load_target_file(getattr(parsed, "target", "") or "")
    except TargetError as exc:
        raise ValueError(str(exc)) from None
    mode = parsed.mode or next(iter(target.modes))
    if mode not in target.modes:
        raise ValueError(
            f"--mode must be one of the target's modes ({', '.join(target.modes)}), got {mode!r}"
        )
    given = {name: getattr(parsed, name) for name in LOCUST_ARGUMENTS}
    shape = given["shape"] or ""
    if shape == LOCUST_STANDALONE_DEFAULTS["shape"]:
        given["shape"] = load.default("shape")  # validated as the declaration's; "" stays "no shape"
    try:
        settings = LoadSettings.model_validate(given)
    except ValidationError as exc:
        err = exc.errors()[0]
        flag = "--" + str(err["loc"][0]).replace("_", "-") if err["loc"] else "option"
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise ValueError(f"{flag}: {msg}, got {err.get('input')!r}") from None
    return LoadOptions(
        mode=mode,
        target=getattr(parsed, "target", "") or "",
        arrival_rate=settings.arrival_rate,
        arrival=settings.arrival,
        seed=settings.seed,
        max_in_flight=settings.max_in_flight,
        late_threshold_ms=settings.late_threshold_ms,
        shape=shape,
        payload_mix=parse_mix(settings.payload_mix),
        run_dir=parsed.run_dir or "",
        redis_url=parsed.redis_url or "",
        drain_timeout_s=settings.drain_timeout_s,
        capture=parsed.capture != "off",
        streams=max(1, int(parsed.ob_streams or 0)),
    )


def standalone_load_section(opts: LoadOptions, parsed: Any, processes: int) -> dict[str, Any]:
    """run.json "load" of a run Locust started on its own (no wrapper wrote one), by the one builder.

    Locust's own options fill what ours do not carry: -u, -r, -t (seconds; null without -t), --processes,
    --expect-workers. A standalone run has no warm-up of its own: null (analysis then excludes nothing).
    """
    values: dict[str, Any] = {
        "users": parsed.num_users,
        "spawn_rate": parsed.spawn_rate,
        "arrival_rate": opts.arrival_rate,
        "arrival": opts.arrival,
        "shape": opts.shape or load.default("shape"),
        "duration_s": parsed.run_time,
        "warmup_s": None,
        "processes": processes,
        "max_in_flight": opts.max_in_flight,
        "seed": opts.seed,
        "expect_workers": int(getattr(parsed, "expect_workers", 0) or 0),
    }
    # not validated: a standalone run may lack -t (duration unknown), which the declaration's bounds refuse
    settings = LoadSettings.model_construct(**values)
    return load.load_section(settings)

"""Our custom Locust arguments (also LOCUST_* env vars and locust.conf keys) and their validated view."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any, Final

from loadtests._arrivals import ARRIVALS
from loadtests._payload import parse_mix
from loadtests._stages import STAGES
from runfolder.schema import MODES

EXPECTED_STATUS: Final = {"noop": 201, "sync": 201, "offload": 202}


def add_arguments(parser: Any) -> None:
    """Register the offload-bench arguments on Locust's parser (init_command_line_parser listener)."""
    # on the parser itself, not a group: only LocustArgumentParser.add_argument knows include_in_web_ui
    group = parser
    group.add_argument(
        "--mode",
        choices=MODES,
        default="noop",
        env_var="LOCUST_MODE",
        help="endpoint family: noop | sync | offload (POST /<mode>/sources)",
    )
    group.add_argument(
        "--arrival-rate",
        type=float,
        default=0.0,
        env_var="LOCUST_ARRIVAL_RATE",
        help="open model: total requests/s over all load processes (0 = closed model: -u/-r)",
    )
    group.add_argument(
        "--arrival",
        choices=ARRIVALS,
        default="poisson",
        env_var="LOCUST_ARRIVAL",
        help="open model arrivals: constant or poisson (seeded)",
    )
    group.add_argument(
        "--seed", type=int, default=42, env_var="LOCUST_SEED", help="seed of arrivals and payloads"
    )
    group.add_argument(
        "--max-in-flight",
        type=int,
        default=1000,
        env_var="LOCUST_MAX_IN_FLIGHT",
        help="open model: cap on requests in flight (over all processes); arrivals beyond it drop",
    )
    group.add_argument(
        "--late-threshold-ms",
        type=float,
        default=20.0,
        env_var="LOCUST_LATE_THRESHOLD_MS",
        help="open model: an arrival sent later than this after its schedule counts as late",
    )
    group.add_argument(
        "--shape",
        choices=("", *STAGES),
        default="",
        env_var="LOCUST_SHAPE",
        help="load shape over --run-time scaled to --users: constant | step | ramp | spike",
    )
    group.add_argument(
        "--payload-mix",
        default="small",
        env_var="LOCUST_PAYLOAD_MIX",
        help="weighted request bodies, e.g. small=8,medium=2 (kinds: small, medium, large)",
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
        help="offload: Redis of the service, for queue depth and job records (default $REDIS_URL)",
    )
    group.add_argument(
        "--drain-timeout-s",
        type=float,
        default=30.0,
        env_var="LOCUST_DRAIN_TIMEOUT_S",
        help="offload: at the end, wait up to this long for the job backlog to drain",
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
        return f"/{self.mode}/sources"


def load_options(parsed: Any) -> LoadOptions:
    """Validate Locust's parsed options into LoadOptions; ValueError with a one-line message when bad."""
    if parsed.mode not in MODES:
        raise ValueError(f"--mode must be one of {', '.join(MODES)}, got {parsed.mode!r}")
    if parsed.arrival_rate < 0:
        raise ValueError(f"--arrival-rate must be >= 0, got {parsed.arrival_rate}")
    if parsed.max_in_flight < 1:
        raise ValueError(f"--max-in-flight must be >= 1, got {parsed.max_in_flight}")
    if parsed.drain_timeout_s < 0:
        raise ValueError(f"--drain-timeout-s must be >= 0, got {parsed.drain_timeout_s}")
    return LoadOptions(
        mode=parsed.mode,
        arrival_rate=float(parsed.arrival_rate),
        arrival=parsed.arrival,
        seed=int(parsed.seed),
        max_in_flight=int(parsed.max_in_flight),
        late_threshold_ms=float(parsed.late_threshold_ms),
        shape=parsed.shape or "",
        payload_mix=parse_mix(parsed.payload_mix),
        run_dir=parsed.run_dir or "",
        redis_url=parsed.redis_url or "",
        drain_timeout_s=float(parsed.drain_timeout_s),
        capture=parsed.capture != "off",
        streams=max(1, int(parsed.ob_streams or 0)),
    )

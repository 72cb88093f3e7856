"""Every load setting, declared once: name, type, default, bounds and help.

The others derive from this declaration: `offload-bench run`'s options and config-file keys (bench/run/config.py
RunConfig subclasses LoadSettings), the Locust arguments and their validated view (loadtests/_options.py),
and run.json's "load" section (load_section). A default changes here and nowhere else.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

# What `locust -f loadtests/` alone defaults to where it must differ from offload-bench run: Locust's own
# closed model (-u/-r) unless --arrival-rate is given, and no load shape unless --shape is given.
# tests/runfolder/test_load.py compares every other Locust default with the declaration.
LOCUST_STANDALONE_DEFAULTS: Final[dict[str, Any]] = {"arrival_rate": 0.0, "shape": ""}

# Settings that are our own Locust arguments (--arrival-rate, ...); the rest are Locust's own options
# (-u, -r, -t, --processes, --expect-workers, ...) or offload-bench's alone (warmup_s).
LOCUST_ARGUMENTS: Final = (
    "arrival_rate", "arrival", "seed", "max_in_flight", "late_threshold_ms", "shape", "payload_mix",
    "drain_timeout_s",
)  # fmt: skip

# run.json "load": the keys every run records (and the gate compares: bench/judge/gate_inputs.LOAD_KEYS).
RUN_JSON_KEYS: Final = (
    "model", "users", "spawn_rate", "arrival_rate", "arrival", "shape", "duration_s", "warmup_s", "processes",
    "max_in_flight", "seed", "expect_workers",
)  # fmt: skip


class LoadSettings(BaseModel):
    """The load a run applies; validated (one-line errors name the setting)."""

    model_config = ConfigDict(extra="forbid")

    users: int = Field(50, ge=1, le=100_000, description="closed model: concurrent users")
    spawn_rate: float = Field(50.0, gt=0, description="closed model: users started per second")
    arrival_rate: float = Field(
        20.0,
        ge=0,
        le=1_000_000,
        description="open model: requests/s over all load processes (0 = closed model)",
    )
    arrival: Literal["constant", "poisson"] = Field(
        "poisson", description="open model arrivals: constant or poisson (seeded)"
    )
    max_in_flight: int = Field(
        1000,
        ge=1,
        description="open model: cap on requests in flight (all load processes); arrivals beyond drop",
    )
    late_threshold_ms: float = Field(
        20.0,
        ge=0,
        description="open model: an arrival sent later than this after its schedule counts as late",
    )
    shape: Literal["constant", "step", "ramp", "spike"] = Field(
        "constant", description="load shape over the duration, scaled to users: constant, step, ramp, spike"
    )
    payload_mix: str = Field(
        "small", description="weighted request bodies, e.g. small=8,medium=2 (kinds: small, medium, large)"
    )
    duration_s: float = Field(30.0, gt=0, le=86_400, description="load time per mode, e.g. 30s, 2m")
    warmup_s: float = Field(
        5.0, ge=0, description="excluded from the numbers at the start of each mode, e.g. 5s"
    )
    drain_timeout_s: float = Field(
        60.0, ge=0, description="offload: how long to wait for the job backlog after the load, e.g. 60s"
    )
    processes: int = Field(1, ge=1, le=64, description="Locust load processes on this machine")
    seed: int = Field(42, description="seed of arrivals and payloads")
    expect_workers: int = Field(
        0,
        ge=0,
        le=1000,
        description="distributed load: Locust workers the master waits for (0 = a local run)",
    )
    master_bind_host: str = Field(
        "127.0.0.1", description="distributed load: interface the Locust master listens on for its workers"
    )
    master_port: int = Field(
        5557,
        ge=1,
        le=65535,
        description="distributed load: port the Locust master listens on for its workers",
    )

    @property
    def model(self) -> str:
        """closed or open load model."""
        return "open" if self.arrival_rate > 0 else "closed"


def load_section(settings: LoadSettings) -> dict[str, Any]:
    """run.json's "load" section of these settings (the one builder of it)."""
    values = settings.model_dump()
    return {key: settings.model if key == "model" else values[key] for key in RUN_JSON_KEYS}


def default(name: str) -> Any:
    """The declared default of one setting."""
    return LoadSettings.model_fields[name].get_default(call_default_factory=True)


def description(name: str) -> str:
    """The declared help text of one setting."""
    return LoadSettings.model_fields[name].description or ""

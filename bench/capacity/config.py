"""`offload-bench capacity` options as one validated object; a bad value is one line naming the option."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from analysis.config import PERCENTILES
from bench.capacity.search import PRECISION

# a worker step: its job rate is counted over the later half of ~14 measured seconds (~7 s of completions)
WORKER_STEP_S = 16.0


class CapacityConfigError(ValueError):
    """A bad capacity option; the message is one line."""


class CapacityConfig(BaseModel):
    """What a capacity search needs; the defaults fit the built-in service in 6 min (--budget) on 2 cores."""

    model_config = ConfigDict(extra="forbid")

    modes: list[str] | None = Field(None, description="modes to search (default: every mode of the target)")
    target: Path | None = None
    host: str | None = None
    redis_url: str | None = None
    percentile: str = "p95"
    # the longest a step lasts: its length comes from the samples its percentile needs (20 beyond p95: 400
    # requests), which low rates cannot give in this; a worker step lasts this long
    step_duration_s: float = Field(20.0, gt=0, le=3600)
    # the stack is warm after its first step (steps run back to back on it): a second is excluded
    warmup_s: float | None = Field(None, ge=0, description="default: 1 s (a fifth of a shorter step)")
    min_rate: float = Field(10.0, gt=0)
    max_rate: float = Field(5000.0, gt=0, le=1_000_000)
    factor: float = Field(4.0, gt=1, description="exponential phase: rate multiplier per step")
    precision: float = Field(PRECISION, gt=1, le=2)
    max_steps: int = Field(20, ge=1, le=100, description="per mode (the budget usually ends a search first)")
    workers: list[int] = Field(default_factory=lambda: [1, 2])
    processes: int = Field(1, ge=1, le=64)
    max_in_flight: int = Field(1000, ge=1)
    out: Path = Path("reports/capacity")
    budget_s: float = Field(360.0, gt=0, le=86400, description="wall time of one whole search")
    repeat: int = Field(1, ge=1, le=20, description="run the whole search N times (median and spread)")

    @field_validator("percentile")
    @classmethod
    def _percentile(cls, value: str) -> str:
        if value not in PERCENTILES:
            raise ValueError(f"unknown percentile {value!r} (choose from {', '.join(PERCENTILES)})")
        return value

    @field_validator("step_duration_s")
    @classmethod
    def _whole_seconds(cls, value: float) -> float:
        if value != int(value):  # Locust's --run-time takes whole seconds
            raise ValueError(f"must be whole seconds, got {value:g}s")
        return value

    @field_validator("workers")
    @classmethod
    def _workers(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("the workers list is empty (give counts like 1,2,4)")
        if any(n < 1 or n > 64 for n in value):
            raise ValueError("worker counts must be between 1 and 64")
        return sorted(set(value))

    @model_validator(mode="after")
    def _check(self) -> CapacityConfig:
        if self.min_rate >= self.max_rate:
            raise ValueError(f"--min-rate ({self.min_rate:g}) must be below --max-rate ({self.max_rate:g})")
        if self.target is not None and self.host is not None:
            raise ValueError("give --target or --host, not both")
        if self.warmup_s is not None and self.warmup_s >= self.step_duration_s:
            raise ValueError("the warm-up must be shorter than --step-duration")
        return self

    @property
    def warmup(self) -> float:
        """Seconds of each step excluded from its numbers."""
        return self.warmup_s if self.warmup_s is not None else min(1.0, self.step_duration_s / 5)

    @property
    def worker_step_s(self) -> float:
        """Load time of a worker step (the job rate is read in its later half): 16 s, or the longest step."""
        return min(WORKER_STEP_S, self.step_duration_s)


def parse_workers(text: str) -> list[int]:
    """ "1,2,4" -> [1, 2, 4]; CapacityConfigError for anything else (an empty list included)."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        counts = [int(p) for p in parts]
    except ValueError:
        raise CapacityConfigError(f"--workers: {text!r} is not a comma-separated list of counts") from None
    if not counts:
        raise CapacityConfigError("--workers: the list is empty (give counts like 1,2,4)")
    return counts


def make_config(values: dict[str, Any]) -> CapacityConfig:
    """Validate options (None = default) into a CapacityConfig; CapacityConfigError with one line when bad."""
    try:
        return CapacityConfig.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        option = _OPTION.get(where, where.replace("_", "-"))
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise CapacityConfigError(f"--{option}: {msg}" if where else msg) from None


_OPTION = {"step_duration_s": "step-duration", "warmup_s": "warmup", "budget_s": "budget"}

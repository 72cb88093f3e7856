"""Gate rules: the TOML schema (thresholds are data, not literals), validated with pydantic."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Op = Literal["<=", "<", ">=", ">", "=="]
Judge = Literal["median", "worst"]
# A dotted path into summary.json, e.g. "modes.offload.latency_ms.p95".
MetricPath = Annotated[str, Field(pattern=r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")]

DEFAULT_RULES_FILE = "gates.toml"


class RulesError(Exception):
    """A rules file that cannot be read or does not validate (one-line message)."""


class GateSettings(BaseModel):
    """How noise is judged for relative rules (see bench/gate_stats.py for the method)."""

    model_config = ConfigDict(extra="forbid")

    alpha: float = Field(0.05, gt=0, lt=1, description="one-sided Mann-Whitney U significance level")
    min_effect: float = Field(
        0.64, ge=0.5, le=1, description="minimum Vargha-Delaney A (P(candidate window worse than baseline))"
    )
    min_windows: int = Field(5, ge=2, description="per side; fewer windows: no noise test, tolerance only")
    min_window_requests: int = Field(10, ge=1, description="windows with fewer requests are left out")


class _RuleBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str | None = Field(None, description="human name in messages, e.g. 'offload p95'")
    unit: str = Field("", description="display only: 'ms', '%' (value is a fraction), 'x', ...")
    description: str = ""
    optional: bool = Field(False, description="skip (instead of a usage error) when the metric is missing")
    judge: Judge = Field("median", description="median over candidate runs, or worst: every run must pass")


class AbsoluteRule(_RuleBase):
    """The candidate's figure against a fixed target: `metric op value`."""

    kind: Literal["absolute"]
    metric: MetricPath
    op: Op
    value: float | bool


class RelativeRule(_RuleBase):
    """The candidate's figure against the baseline's: may grow (or shrink) at most a percentage."""

    kind: Literal["relative"]
    metric: MetricPath
    max_increase_pct: float | None = Field(None, ge=0, description="higher is worse (latency)")
    max_decrease_pct: float | None = Field(None, ge=0, le=100, description="lower is worse (throughput)")
    windows: MetricPath | None = Field(
        None, description="per-window series for the noise test; inferred for modes.<m>.latency_ms.pNN"
    )

    @model_validator(mode="after")
    def _one_direction(self) -> RelativeRule:
        if (self.max_increase_pct is None) == (self.max_decrease_pct is None):
            raise ValueError("set exactly one of max_increase_pct, max_decrease_pct")
        return self

    @property
    def higher_is_worse(self) -> bool:
        """True when the rule guards against growth (latency), False against shrinkage (throughput)."""
        return self.max_increase_pct is not None

    @property
    def tolerance_pct(self) -> float:
        """The allowed change in percent (positive)."""
        value = self.max_increase_pct if self.max_increase_pct is not None else self.max_decrease_pct
        assert value is not None  # guaranteed by _one_direction
        return value


class RatioRule(_RuleBase):
    """A machine-independent ratio of two figures measured side by side in one run: `num / den op value`."""

    kind: Literal["ratio"]
    numerator: MetricPath
    denominator: MetricPath
    op: Op
    value: float = Field(gt=0)


Rule = Annotated[AbsoluteRule | RelativeRule | RatioRule, Field(discriminator="kind")]


class RulesFile(BaseModel):
    """A whole rules file: [settings] and [rules.<name>] tables."""

    model_config = ConfigDict(extra="forbid")

    settings: GateSettings = Field(default_factory=GateSettings)
    rules: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")], Rule] = Field(min_length=1)

    @property
    def needs_baseline(self) -> bool:
        """True when some rule compares against the baseline."""
        return any(isinstance(rule, RelativeRule) for rule in self.rules.values())


def _one_line(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def parse_rules(text: str, source: str) -> RulesFile:
    """Parse and validate rules TOML text; RulesError with a one-line message when bad."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"bad rules file {source}: invalid TOML: {exc}") from None
    try:
        return RulesFile.model_validate(raw)
    except ValidationError as exc:
        raise RulesError(f"bad rules file {source}: {_one_line(exc)}") from None


def load_rules(path: Path | None) -> tuple[RulesFile, str]:
    """Load the rules file at path (or the packaged default); returns the rules and where they came from."""
    if path is None:
        resource = resources.files("bench").joinpath(DEFAULT_RULES_FILE)
        return parse_rules(resource.read_text(encoding="utf-8"), f"bench/{DEFAULT_RULES_FILE}"), (
            f"bench/{DEFAULT_RULES_FILE} (packaged default)"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"cannot read rules file {path}: {exc.strerror or exc}") from None
    return parse_rules(text, str(path)), str(path)

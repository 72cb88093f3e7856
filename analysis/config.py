"""Thresholds the analysis judges a run by, read from a TOML file (analysis/thresholds.toml by default)."""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

# Percentile key -> percent, in report order. "p999" is the 99.9th percentile.
PERCENTILES: dict[str, float] = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}


class ConfigError(ValueError):
    """A thresholds file is missing a key or has a bad value."""


@dataclass(frozen=True)
class Thresholds:
    """Every number the analysis compares against; see thresholds.toml for what each means."""

    fast_ms: float
    slow_ms: float
    percentile: str
    satisfied_ms: float
    tolerating_ms: float
    tail_samples: int
    window_s: float
    max_points_per_mode: int
    loadgen_cpu_max_percent: float
    error_rate_max: float
    late_frac_max: float
    send_lateness_p99_max_ms: float
    dropped_frac_max: float
    backlog_slope_min_per_s: float
    backlog_slope_frac_of_rate: float

    def min_samples(self, key: str) -> int:
        """Samples a percentile needs before it is trusted: tail_samples / (1 - q), rounded up."""
        tail_frac = 1.0 - PERCENTILES[key] / 100.0
        # round first: 1 - 0.9 is 0.09999999999999998 in floats, and p90 must need 100, not 101
        return math.ceil(round(self.tail_samples / tail_frac, 6)) if tail_frac > 0 else 1


def _get(data: dict[str, Any], section: str, key: str) -> Any:
    try:
        return data[section][key]
    except KeyError:
        raise ConfigError(f"thresholds: missing [{section}] {key}") from None


def _packaged() -> dict[str, Any]:
    return tomllib.loads(resources.files("analysis").joinpath("thresholds.toml").read_text(encoding="utf-8"))


def load_thresholds(path: Path | None = None) -> Thresholds:
    """Read thresholds from path over the packaged analysis/thresholds.toml (a key the file lacks keeps the
    packaged value, so a file written before a threshold existed still loads), or the packaged file alone."""
    data = _packaged()
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read thresholds file {path}: {exc.strerror}") from None
        try:
            user = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"thresholds file is not valid TOML: {exc}") from None
        for section, values in user.items():
            if isinstance(values, dict) and isinstance(data.get(section), dict):
                data[section].update(values)
            else:
                data[section] = values
    th = Thresholds(
        fast_ms=float(_get(data, "target", "fast_ms")),
        slow_ms=float(_get(data, "target", "slow_ms")),
        percentile=str(_get(data, "target", "percentile")),
        satisfied_ms=float(_get(data, "apdex", "satisfied_ms")),
        tolerating_ms=float(_get(data, "apdex", "tolerating_ms")),
        tail_samples=int(_get(data, "samples", "tail_samples")),
        window_s=float(_get(data, "windows", "window_s")),
        max_points_per_mode=int(_get(data, "plots", "max_points_per_mode")),
        loadgen_cpu_max_percent=float(_get(data, "validity", "loadgen_cpu_max_percent")),
        error_rate_max=float(_get(data, "validity", "error_rate_max")),
        late_frac_max=float(_get(data, "validity", "late_frac_max")),
        send_lateness_p99_max_ms=float(_get(data, "validity", "send_lateness_p99_max_ms")),
        dropped_frac_max=float(_get(data, "validity", "dropped_frac_max")),
        backlog_slope_min_per_s=float(_get(data, "validity", "backlog_slope_min_per_s")),
        backlog_slope_frac_of_rate=float(_get(data, "validity", "backlog_slope_frac_of_rate")),
    )
    if th.percentile not in PERCENTILES:
        raise ConfigError(f"thresholds: [target] percentile must be one of {', '.join(PERCENTILES)}")
    if not 0 < th.fast_ms <= th.slow_ms or th.window_s <= 0 or th.tail_samples < 1:
        raise ConfigError("thresholds: need 0 < fast_ms <= slow_ms, window_s > 0, tail_samples >= 1")
    return th

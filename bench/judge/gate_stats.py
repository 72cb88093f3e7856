"""The gate's noise check: is a candidate's shift larger than run-to-run noise?

Method (stated in every report): the per-window percentiles (summary.json modes.<m>.windows.pNN, one value per
window of window_s seconds, warm-up windows and windows with too few requests left out) of all baseline runs are
pooled and compared with those of all candidate runs by a one-sided Mann-Whitney U test (scipy). A shift counts
as real only when p < alpha AND the effect size, Vargha-Delaney A = P(a candidate window is worse than a
baseline window) (ties count half), is at least min_effect. Windows are autocorrelated, so p alone overstates
confidence; the effect-size floor keeps a tiny but "significant" shift over many windows from failing the gate
(the same idea as pyperf's significance check plus its minimum-speed threshold).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.judge.gate_inputs import MissingMetric, Summary, resolve
from runfolder.summary import Windows

METHOD_RELATIVE = (
    "relative rules fail only when the change of the median exceeds the tolerance AND the run-to-run noise: "
    "one-sided Mann-Whitney U over the per-window percentiles of baseline vs candidate runs (pooled), "
    "p < {alpha} and effect size A (P(candidate window worse)) >= {min_effect}"
)
METHOD_FIXED = "absolute and ratio rules judge the {judge} over the candidate runs"


def describe_method(alpha: float, min_effect: float, judges: Sequence[str], relative: bool) -> str:
    """The judging method in one sentence, as printed with every report."""
    fixed = METHOD_FIXED.format(judge=" or ".join(judges) or "median")
    return (METHOD_RELATIVE.format(alpha=alpha, min_effect=min_effect) + "; " + fixed) if relative else fixed


_LATENCY = re.compile(r"^modes\.([A-Za-z0-9_]+)\.latency_ms\.(p\d+)$")


@dataclass(frozen=True)
class NoiseTest:
    """The outcome of one Mann-Whitney U test between baseline and candidate windows."""

    n_baseline: int
    n_candidate: int
    p_value: float
    effect: float
    significant: bool

    def describe(self) -> str:
        """Short text for tables: p-value, effect size, window counts."""
        return f"p={self.p_value:.2g} A={self.effect:.2f} n={self.n_baseline}/{self.n_candidate}"


def infer_windows_path(metric: str, summary: Summary) -> str | None:
    """modes.<m>.latency_ms.pNN -> modes.<m>.windows.pNN when that series exists in the summary."""
    match = _LATENCY.match(metric)
    if not match:
        return None
    path = f"modes.{match.group(1)}.windows.{match.group(2)}"
    try:
        resolve(summary, path)
    except MissingMetric:
        return None
    return path


def window_values(summary: Summary, path: str, min_requests: int) -> list[float]:
    """The per-window values at path, without warm-up windows, null windows and thin windows."""
    try:
        values = resolve(summary, path)
    except MissingMetric:
        return []
    if not isinstance(values, list):
        return []
    parent: Any = resolve(summary, path.rsplit(".", 1)[0])
    requests = parent.requests if isinstance(parent, Windows) else None
    starts = parent.start_ts if isinstance(parent, Windows) else None
    warm_until = _warm_until(summary, path)
    out: list[float] = []
    for i, value in enumerate(values):
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            continue
        if isinstance(requests, list) and i < len(requests) and (requests[i] or 0) < min_requests:
            continue
        if warm_until is not None and isinstance(starts, list) and i < len(starts) and starts[i] < warm_until:
            continue
        out.append(float(value))
    return out


def _warm_until(summary: Summary, windows_path: str) -> float | None:
    """End of the warm-up of the mode the series belongs to, when the summary says (else None)."""
    parts = windows_path.split(".")
    if len(parts) < 2 or parts[0] != "modes":
        return None
    mode_run = summary.run.modes.get(parts[1])
    warmup = summary.model.warmup_s
    if mode_run is None or mode_run.start_ts is None or warmup is None:
        return None
    return mode_run.start_ts + warmup


def noise_test(
    baseline: list[float], candidate: list[float], higher_is_worse: bool, alpha: float, min_effect: float
) -> NoiseTest:
    """One-sided Mann-Whitney U (is the candidate worse?) with the Vargha-Delaney A effect size."""
    from scipy.stats import (
        mannwhitneyu,
    )  # imported here: scipy is slow to import and only relative rules need it

    alternative = "greater" if higher_is_worse else "less"
    result = mannwhitneyu(candidate, baseline, alternative=alternative)
    # scipy's statistic is U of the first sample: the count of (candidate > baseline) pairs, ties counting half.
    a_greater = float(result.statistic) / (len(candidate) * len(baseline))
    effect = a_greater if higher_is_worse else 1.0 - a_greater
    p_value = float(result.pvalue)
    return NoiseTest(
        n_baseline=len(baseline),
        n_candidate=len(candidate),
        p_value=p_value,
        effect=effect,
        significant=p_value < alpha and effect >= min_effect,
    )

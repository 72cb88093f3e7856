"""Judging: each rule against the candidate runs (and the baseline), into a list of results. No I/O."""

from __future__ import annotations

import math
import operator
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bench.judge.gate_inputs import MissingMetric, Summary, resolve_number
from bench.judge.gate_rules import AbsoluteRule, GateSettings, Op, RatioRule, RelativeRule, Rule, RulesFile
from bench.judge.gate_stats import NoiseTest, infer_windows_path, noise_test, window_values

Status = Literal["PASS", "FAIL", "SKIP"]
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
    "==": operator.eq,
}
# What a violated comparison reads as in a failure message.
_NEGATED: dict[str, str] = {"<=": ">", "<": ">=", ">=": "<", ">": "<=", "==": "!="}


class RuleConfigError(Exception):
    """A rule that cannot be evaluated on these inputs (missing metric, no baseline): exit 2."""


@dataclass
class RuleResult:
    """The verdict of one rule, with every figure a report shows."""

    name: str
    kind: str
    label: str
    metric: str
    baseline: str
    candidate: str
    limit: str
    noise: str
    status: Status
    message: str
    per_run: list[float]


def fmt(value: float, unit: str) -> str:
    """A figure with its unit: 143.2 ms, 3.4 %, 2.5x, 0."""
    if math.isinf(value):
        return "inf"
    if unit == "bool":
        return "true" if value else "false"
    if unit == "%":
        return f"{value * 100:.3g} %"
    if unit == "x":
        return f"{value:.3g}x"
    if value.is_integer():
        text = f"{value:.0f}"
    else:
        text = f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"
    return f"{text} {unit}".strip()


def _label(rule: Rule, name: str) -> str:
    if rule.label:
        return rule.label
    path = rule.numerator if isinstance(rule, RatioRule) else rule.metric
    parts = path.split(".")
    if parts[0] == "modes" and len(parts) >= 3:
        return f"{parts[1]} {parts[-1]}"
    return path


def _values(summaries: list[Summary], path: str) -> list[float]:
    return [resolve_number(s, path) for s in summaries]


def _ratio(s: Summary, rule: RatioRule) -> float:
    num, den = resolve_number(s, rule.numerator), resolve_number(s, rule.denominator)
    if den == 0:
        return math.inf if num > 0 else 1.0
    return num / den


def _judged(values: list[float], op: Op, judge: str, limit: float) -> float:
    """The median over runs, or under judge='worst' the run that is furthest on the failing side."""
    if judge == "median":
        return float(statistics.median(values))
    if op in ("<=", "<"):
        return max(values)
    if op in (">=", ">"):
        return min(values)
    return next((v for v in values if v != limit), values[0])  # ==: any run that differs fails


def _fixed(name: str, rule: AbsoluteRule | RatioRule, cand: list[Summary], base: list[Summary]) -> RuleResult:
    label = _label(rule, name)
    if isinstance(rule, RatioRule):
        metric, unit = f"{rule.numerator} / {rule.denominator}", rule.unit or "x"
        per_run = [_ratio(s, rule) for s in cand]
    else:
        metric, unit = rule.metric, rule.unit
        per_run = _values(cand, rule.metric)
    try:  # the baseline's figure is context only for fixed limits: missing there is fine
        base_runs = (
            [_ratio(s, rule) for s in base] if isinstance(rule, RatioRule) else _values(base, rule.metric)
        )
    except MissingMetric:
        base_runs = []
    limit = float(rule.value)
    value = _judged(per_run, rule.op, rule.judge, limit)
    ok = _OPS[rule.op](value, limit)
    if isinstance(rule, AbsoluteRule) and isinstance(rule.value, bool):
        unit = "bool"
    how = (
        ""
        if len(per_run) == 1
        else (
            f" (median of {len(per_run)} runs)"
            if rule.judge == "median"
            else f" (worst of {len(per_run)} runs)"
        )
    )
    message = (
        "" if ok else f"{label} {fmt(value, unit)} {_NEGATED[rule.op]} {fmt(limit, unit)}{how} (rule {name})"
    )
    return RuleResult(
        name=name,
        kind=rule.kind,
        label=label,
        metric=metric,
        baseline=fmt(statistics.median(base_runs), unit) if base_runs else "-",
        candidate=fmt(value, unit),
        limit=f"{rule.op} {fmt(limit, unit)}",
        noise="-",
        status="PASS" if ok else "FAIL",
        message=message,
        per_run=per_run,
    )


def _relative(
    name: str, rule: RelativeRule, cand: list[Summary], base: list[Summary], settings: GateSettings
) -> RuleResult:
    label = _label(rule, name)
    base_value = float(statistics.median(_values(base, rule.metric)))
    per_run = _values(cand, rule.metric)
    cand_value = float(statistics.median(per_run))
    if base_value == 0:
        change_pct = 0.0 if cand_value == 0 else math.copysign(math.inf, cand_value)
    else:
        change_pct = (cand_value - base_value) / abs(base_value) * 100
    worse_pct = change_pct if rule.higher_is_worse else -change_pct
    exceeds = worse_pct > rule.tolerance_pct
    test = _noise(rule, cand, base, settings)
    regression = exceeds and (isinstance(test, str) or test.significant)
    sign = "+" if rule.higher_is_worse else "-"
    noise_text = test if isinstance(test, str) else test.describe()
    message = ""
    if regression:
        message = (
            f"{label} {fmt(cand_value, rule.unit)} vs baseline {fmt(base_value, rule.unit)}: "
            f"{change_pct:+.1f} % beyond {sign}{rule.tolerance_pct:g} % (rule {name}; {noise_text})"
        )
    elif exceeds:
        noise_text += " - within noise, not reported"
    return RuleResult(
        name=name,
        kind=rule.kind,
        label=label,
        metric=rule.metric,
        baseline=fmt(base_value, rule.unit),
        candidate=f"{fmt(cand_value, rule.unit)} ({change_pct:+.1f} %)",
        limit=f"{sign}{rule.tolerance_pct:g} %",
        noise=noise_text,
        status="FAIL" if regression else "PASS",
        message=message,
        per_run=per_run,
    )


def _noise(
    rule: RelativeRule, cand: list[Summary], base: list[Summary], settings: GateSettings
) -> NoiseTest | str:
    """The Mann-Whitney check over pooled per-window values, or why there is none (tolerance only)."""
    path = rule.windows or infer_windows_path(rule.metric, cand[0])
    if path is None:
        return "n/a (no per-window series: tolerance only)"
    base_windows = [v for s in base for v in window_values(s, path, settings.min_window_requests)]
    cand_windows = [v for s in cand for v in window_values(s, path, settings.min_window_requests)]
    if min(len(base_windows), len(cand_windows)) < settings.min_windows:
        return (
            f"n/a (windows {len(base_windows)}/{len(cand_windows)}, need {settings.min_windows} a side: "
            "tolerance only)"
        )
    return noise_test(base_windows, cand_windows, rule.higher_is_worse, settings.alpha, settings.min_effect)


def _skipped(name: str, rule: Rule, why: str) -> RuleResult:
    metric = f"{rule.numerator} / {rule.denominator}" if isinstance(rule, RatioRule) else rule.metric
    return RuleResult(name, rule.kind, _label(rule, name), metric, "-", "-", "-", "-", "SKIP", why, [])


def evaluate(rules: RulesFile, candidates: list[Summary], baseline: list[Summary]) -> list[RuleResult]:
    """Every rule's verdict; RuleConfigError when a non-optional rule's metric is missing."""
    results: list[RuleResult] = []
    for name, rule in rules.rules.items():
        try:
            if isinstance(rule, RelativeRule):
                if not baseline:
                    raise RuleConfigError(f"rule {name} compares against a baseline, but none was given")
                results.append(_relative(name, rule, candidates, baseline, rules.settings))
            else:
                results.append(_fixed(name, rule, candidates, baseline))
        except MissingMetric as exc:
            if rule.optional:
                results.append(_skipped(name, rule, f"metric {exc.args[0]} missing"))
                continue
            raise RuleConfigError(
                f"rule {name}: metric {exc.args[0]} is missing (or null) in a candidate or baseline summary "
                "(run that mode, or set optional = true on the rule)"
            ) from None
    return results

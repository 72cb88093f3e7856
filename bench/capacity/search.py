"""The capacity search as pure logic over "run one step at rate R -> judged step" (Nighthawk, mutilate).

Exponential phase: from min_rate, multiply the rate by `factor` while any target still holds at every rate
tried. Bisection phase: between each target's highest sustainable and lowest unsustainable rate (geometric
midpoint: rates span orders of magnitude) until high <= precision * low, the widest bracket first. Steps
count at the rate asked for, and brackets scale it by the median arrivals got per rate asked: a generator's
steady shortfall counts, one step's Poisson wander does not. One step
informs every target (fast, ok, jobs), so the brackets narrow together (`narrow` may leave one, the job side,
judged at every step but not searched for). A generator-limited step bounds the
search from above without counting as the server's failure (after one repeat at the same rate: a stall of
the generator on a shared machine is often brief); such a bracket stops at a factor of 2 (its top is the
generator's limit, which more steps would only measure more precisely).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from bench.capacity.model import Bracket, CutBy, LimitedBy, Step

PRECISION: Final = 1.10  # the "within 10 %" (mutilate uses 1.02 with much cheaper steps)
# a bracket bounded by the generator measures the generator, not the server: narrowing it far is a waste of steps
GENERATOR_PRECISION: Final = 2.0
FACTOR: Final = 2.0
SAME_RATE: Final = 1.005  # rates closer than this are the same step
# a generator that sent fewer than this share on time is at its limit, not stalled briefly: no repeat
RETRY_SENT_MIN: Final = 0.9


@dataclass
class _Target:
    name: str
    passes: list[float] = field(default_factory=list)
    fails: list[float] = field(default_factory=list)
    unknown: list[float] = field(default_factory=list)
    top_asked: float = 0.0  # the highest rate asked for that passed

    @property
    def high(self) -> float | None:
        return min(self.fails) if self.fails else None

    @property
    def ceiling(self) -> float | None:
        """The lowest rate the search cannot judge: a server failure or a generator limit."""
        bounds = self.fails + self.unknown
        return min(bounds) if bounds else None

    @property
    def low(self) -> float | None:
        top = self.ceiling
        ok = [r for r in self.passes if top is None or r < top]
        return max(ok) if ok else None


@dataclass
class Search:
    """Which rate to run next, given the judged steps so far; `brackets()` says where each target stands."""

    min_rate: float
    max_rate: float
    targets: tuple[str, ...] = ("fast", "ok")
    precision: float = PRECISION
    factor: float = FACTOR
    max_steps: int = 20
    steps: list[Step] = field(default_factory=list)
    # the targets whose brackets the search narrows (default: all); the others are judged at every step only
    # (the job side: its capacity is measured directly, as the rate saturated workers complete)
    narrow: tuple[str, ...] | None = None

    retry_generator_limited: bool = True
    # what ended the search before every bracket was narrow enough (set by next_rate, or by the caller when
    # its time budget ran out or it was interrupted)
    cut_by: CutBy = ""
    # rates whose contradicted failure was run again (contradicted(), replace())
    rechecked: set[float] = field(default_factory=set)

    def __post_init__(self) -> None:
        if not 0 < self.min_rate < self.max_rate:
            raise ValueError(f"need 0 < min rate < max rate, got {self.min_rate:g} and {self.max_rate:g}")
        if self.precision <= 1 or self.factor <= 1:
            raise ValueError("precision and factor must be > 1")
        self._t = {name: _Target(name) for name in self.targets}
        self._retry: Step | None = None  # a generator-limited step to repeat once before it bounds the search

    def record(self, step: Step) -> None:
        """Add a judged step, kept at the rate asked for; brackets() scales every rate by the search's median
        got/asked (a generator's steady shortfall counts, one step's Poisson wander does not: the arrivals of
        a 400-request step stray +-5 % from the rate asked, which made a bracket of rates 5 % apart 1.11x
        wide and a repeat of the same search quote another figure)."""
        self.steps.append(step)
        first, self._retry = self._retry, None
        if first is not None and first.rate == step.rate:  # the repeat decides: forget the first's unknowns
            for name, t in self._t.items():
                if first.verdicts.get(name, "unknown") == "unknown" and first.rate in t.unknown:
                    t.unknown.remove(first.rate)
        elif (
            step.generator_limited
            and self.retry_generator_limited
            and (step.sent_on_time is None or step.sent_on_time >= RETRY_SENT_MIN)
        ):
            self._retry = step
        for name, t in self._t.items():
            outcome = step.verdicts.get(name, "unknown")
            {"pass": t.passes, "fail": t.fails, "unknown": t.unknown}[outcome].append(step.rate)
            if outcome == "pass":
                t.top_asked = max(t.top_asked, step.rate)

    def contradicted(self) -> Step | None:
        """A step judged on one run whose failure a pass at a higher rate contradicts (for a target the search
        narrows), the lowest first, once per rate: non-monotone results at a shared machine's knee are often
        one run's stall (noop: 2,153 req/s failed at 122 ms, 2,348 then passed, and the bracket stopped under
        the failure: 2,003 req/s, against 2,642 in the next run)."""
        driving = self.narrow if self.narrow is not None else self.targets
        for rate in sorted({f for n in driving for f in self._t[n].fails}):
            if rate in self.rechecked:
                continue
            if not any(
                p > rate * SAME_RATE for n in driving for p in self._t[n].passes if rate in self._t[n].fails
            ):
                continue
            step = next((s for s in reversed(self.steps) if s.rate == rate), None)
            if step is not None and not step.runs:
                return step
        return None

    def replace(self, old: Step, new: Step) -> None:
        """Judge old's rate on new instead (the same rate run again, both runs pooled): old's outcomes are
        taken back, new's counted, and the rate is not looked at again."""
        self.rechecked.add(old.rate)
        for name, t in self._t.items():
            before = {"pass": t.passes, "fail": t.fails, "unknown": t.unknown}[
                old.verdicts.get(name, "unknown")
            ]
            if old.rate in before:
                before.remove(old.rate)
            outcome = new.verdicts.get(name, "unknown")
            {"pass": t.passes, "fail": t.fails, "unknown": t.unknown}[outcome].append(new.rate)
            if outcome == "pass":
                t.top_asked = max(t.top_asked, new.rate)
        self.steps[self.steps.index(old)] = new

    def _done(self, t: _Target) -> bool:
        low, top = t.low, t.ceiling
        if low is None:  # the first step (at min_rate) did not pass: nothing below it is searched
            return bool(t.fails or t.unknown)
        if top is None:
            return t.top_asked >= self.max_rate / SAME_RATE
        if top not in t.fails:
            return top <= max(self.precision, GENERATOR_PRECISION) * low
        return top <= self.precision * low

    def next_rate(self) -> float | None:
        """The next rate to run, or None when every bracket is narrow enough (or the budget is spent)."""
        if not self.steps:
            return self.min_rate
        if len(self.steps) >= self.max_steps:
            self.cut_by = self.cut_by or "max-steps"
            return None
        if self._retry is not None:  # a generator stall on a shared machine is often brief: look again once
            return self._retry.rate
        driving = self.narrow if self.narrow is not None else self.targets
        open_targets = [t for t in self._t.values() if t.name in driving and not self._done(t)]
        if not open_targets:
            return None
        climbing = [t for t in open_targets if t.ceiling is None]
        if climbing:  # exponential phase: everything tried so far holds for these targets
            rate = min(self.max_rate, self.factor * max(s.rate for s in self.steps))
        else:  # bisect the widest bracket (geometric midpoint of the rates asked)
            t = max(open_targets, key=lambda t: (t.ceiling or 0) / (t.low or self.min_rate))
            low, top = t.low, t.ceiling
            assert top is not None
            rate = math.sqrt(low * top) if low is not None else max(self.min_rate, top / self.factor)
        if self._asked(rate):
            self.cut_by = self.cut_by or "resolution"
            return None  # nothing new to learn (non-monotone results at the resolution asked for)
        return rate

    def _asked(self, rate: float) -> bool:
        """A step already ran at this rate (asked for)."""
        return any(abs(math.log(rate / s.rate)) < math.log(SAME_RATE) for s in self.steps)

    def climbing(self) -> bool:
        """Still in the exponential phase: some target the search narrows has not failed anywhere yet."""
        driving = self.narrow if self.narrow is not None else self.targets
        return any(t.ceiling is None for t in self._t.values() if t.name in driving and not self._done(t))

    def got_per_asked(self) -> float:
        """How the arrivals the server got compare with the rate asked for: the median over the steps whose
        generator kept up (1.0 before any)."""
        ratios = sorted(
            s.arrival_rate / s.rate
            for s in self.steps
            if s.arrival_rate and s.rate > 0 and not s.generator_limited
        )
        return ratios[len(ratios) // 2] if ratios else 1.0

    def crossing(
        self, name: str, limit_ms: float, latency_limits: Mapping[str, float] | None = None
    ) -> float | None:
        """Where the judged percentile crosses limit_ms inside the target's bracket: log-log between the step
        at its low end (held) and the step at its top when that one failed on its latency (scaled like the
        bracket). A pass/fail flip of one step at a shared machine's knee moves the bracket's low end by a
        whole bisection (sync "ok" 17 vs 22 req/s in two default searches); the crossing moves with the
        percentiles. On a knee (p95 convex in the rate) the chord crosses before the curve: it errs low.
        None: no such pair (the top failed on errors or a growing queue, or the generator bounds it).

        latency_limits: every latency target's limit (default: this one's alone). A top step that failed a
        target with its percentile within that target's limit failed on something every target shares
        (errors, requests in flight growing): then it failed on more than its latency, and no target's
        crossing lies below it (noop once quoted "holds 100 ms up to 1,633 req/s" beside "holds 1,000 ms up
        to 1,571": the top's p95 was 344 ms, and its requests in flight grew)."""
        t = self._t[name]
        low, top = t.low, t.ceiling
        if low is None or top is None or top not in t.fails or top <= low:
            return None
        held = self._last(low, name, "pass")
        broke = self._last(top, name, "fail")
        if held is None or broke is None or broke.generator_limited:
            return None
        lo_ms, hi_ms = held.percentile_ms, broke.percentile_ms
        if lo_ms is None or hi_ms is None or not 0 < lo_ms <= limit_ms < hi_ms:
            return None
        for other, other_ms in (latency_limits or {}).items():
            if broke.verdicts.get(other) == "fail" and hi_ms <= other_ms:
                return None  # it failed `other` within its latency limit: a shared fault, not the percentile
        frac = math.log(limit_ms / lo_ms) / math.log(hi_ms / lo_ms)
        return float(low * (top / low) ** frac * self.got_per_asked())

    def _last(self, rate: float, name: str, outcome: str) -> Step | None:
        """The last step at rate with this outcome for the target."""
        return next(
            (s for s in reversed(self.steps) if s.rate == rate and s.verdicts.get(name) == outcome), None
        )

    def brackets(self) -> dict[str, Bracket]:
        """Each target's bracket, what bounds it from above, and whether it is narrow enough."""
        out = {}
        got = self.got_per_asked()
        for name, t in self._t.items():
            low, top = t.low, t.ceiling
            why: LimitedBy
            if top is None:
                why = (
                    "unmeasured" if low is None else "range"
                )  # range: complete says whether it reached the top
            elif low is None:
                why = "none" if top in t.fails else "generator"
            else:
                why = "server" if top in t.fails else "generator"
            done = self._done(t)
            width = top / low if low and top else None
            out[name] = Bracket(
                low=None if low is None else low * got,
                high=None if top is None else top * got,
                limited_by=why,
                complete=done,
                width=width,
                cut_by="" if done else self.cut_by,
            )
        return out


def placed(step: Step) -> float:
    """Where a step counts: the arrivals the server got, or, when the generator could not send them, the
    rate it was asked for (the search cannot judge that rate or any above it)."""
    if step.generator_limited or not step.arrival_rate:
        return step.rate
    return step.arrival_rate


def run_search(
    search: Search,
    measure: Callable[[float], Step],
    on_step: Callable[[Search, Step], None] = lambda _s, _step: None,
) -> Search:
    """Measure rates until the search is done; on_step(search, step) after each (for progress)."""
    while (rate := search.next_rate()) is not None:
        step = measure(rate)
        search.record(step)
        on_step(search, step)
    return search

"""A step's verdict per target from its measured numbers: pure, no files, no processes.

A target ("fast": the percentile within fast_ms, "ok": within slow_ms, "jobs": the backlog bounded) *passes*
when every check holds, *fails* when the server is shown not to hold it, and is *unknown* when the load
generator fell behind (sent < 99 % of the scheduled arrivals on time, as Nighthawk checks) and the server's
failure is not shown otherwise: a saturated generator is never taken for a saturated server.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

from bench.capacity.model import Step

SENT_ON_TIME_MIN: Final = 0.99  # Nighthawk's adaptive controller: send rate >= 99 % of the requested rate
Outcome = Literal["pass", "fail", "unknown"]


@dataclass(frozen=True)
class Limits:
    """The numbers a step is judged against (from the analysis thresholds, so they stay data)."""

    fast_ms: float = 100.0
    slow_ms: float = 1000.0
    error_rate_max: float = 0.01
    slope_min_per_s: float = 1.0
    slope_frac_of_rate: float = 0.02
    sent_on_time_min: float = SENT_ON_TIME_MIN
    loadgen_cpu_max_percent: float = 90.0
    # requests in flight at 90 % utilisation wander by ~1.5 % of the rate per second over a 4 s window: the
    # server's queue gets a wider margin than the job backlog's (which the run's validity already judges)
    inflight_frac_of_rate: float = 0.05
    # a steady count of requests in flight is about Poisson around L = rate x time in system (Little's law): a
    # growth over the window under this many sqrt(L) is that count wandering, not a server falling behind (a
    # 3 s step of 14 sync requests at 10 req/s "grew 1.2/s" in 2 of 3 default searches, and ended sync's search)
    inflight_noise_sd: float = 3.0

    def slope_limit(self, rate: float) -> float:
        """The job backlog growth (per second) beyond which it counts as growing at this arrival rate."""
        return max(self.slope_min_per_s, self.slope_frac_of_rate * rate)

    def inflight_limit(self, rate: float) -> float:
        """The growth of requests in flight (per second) beyond which the server counts as falling behind."""
        return max(self.slope_min_per_s, self.inflight_frac_of_rate * rate)


def _rate(step: Step) -> float:
    """The arrival rate the server actually got (the asked one when unknown)."""
    return step.arrival_rate or step.rate


def _server_faults(step: Step, lim: Limits, offload_like: bool) -> list[str]:
    """Failures that hold whatever the generator did (they count for every target)."""
    out = []
    if step.requests == 0:
        out.append("no responses")
    if step.error_rate is not None and step.error_rate > lim.error_rate_max:
        out.append(f"errors {step.error_rate:.1%} > {lim.error_rate_max:.0%}")
    if offload_like and step.jobs_lost:
        out.append(f"{step.jobs_lost} accepted job(s) not reconciled (lost)")
    slope = step.inflight_slope_per_s
    if (
        slope is not None
        and slope > lim.inflight_limit(_rate(step))
        and step.generator_limited is False
        and _beyond_noise(step, slope, lim)
    ):
        out.append(f"requests in flight grew {slope:.1f}/s (the server fell behind)")
    return out


def _beyond_noise(step: Step, slope: float, lim: Limits) -> bool:
    """The growth of requests in flight over the measured window (requests / arrival rate) is more than a
    steady count wanders there; unknown inputs count as shown (the other checks still judge the step)."""
    rate = step.arrival_rate
    if not rate or not step.requests or step.p50 is None:
        return True
    window_s = step.requests / rate
    level = rate * step.p50 / 1000.0  # requests in flight, steady (Little's law)
    return slope * window_s > lim.inflight_noise_sd * math.sqrt(max(level, 1.0))


def judge(step: Step, lim: Limits, offload_like: bool) -> Step:
    """Fill step's generator_limited, verdicts, sustainable, fast, jobs_sustainable and reason."""
    behind = step.sent_on_time is not None and step.sent_on_time < lim.sent_on_time_min
    starved = step.loadgen_cpu_percent is not None and step.loadgen_cpu_percent >= lim.loadgen_cpu_max_percent
    step = step.model_copy(update={"generator_limited": behind})
    common = _server_faults(step, lim, offload_like)
    verdicts: dict[str, Outcome] = {}
    reasons: dict[str, str] = {}
    for target, limit_ms in (("fast", lim.fast_ms), ("ok", lim.slow_ms)):
        why = list(common)
        value = step.percentile_ms
        # with the generator behind, only the latency from the actual send can be the server's, and only
        # when the generator itself had CPU to spare (a starved generator delays the responses it reads too)
        shown = step.uncorrected_ms if behind and step.uncorrected_ms is not None else value
        if behind and starved:
            pass  # unknown: this latency is the generator's as much as the server's
        elif shown is None:
            why.append("no latency")
        elif shown > limit_ms:
            why.append(f"{shown:,.1f} ms > {limit_ms:,.0f} ms")
        if why:
            verdicts[target], reasons[target] = "fail", "; ".join(why)
        elif behind:
            verdicts[target], reasons[target] = "unknown", "generator-limited"
        else:
            verdicts[target] = "pass"
    if offload_like:
        why = [c for c in common if "lost" in c or "no responses" in c]
        slope = step.backlog_slope_per_s
        if step.backlog_growing:
            done = f" (workers finished {step.job_rate:.1f}/s)" if step.job_rate is not None else ""
            why.append(f"job backlog grew {slope or 0:.1f}/s{done}")
        if why:
            verdicts["jobs"], reasons["jobs"] = "fail", "; ".join(why)
        elif (
            step.backlog_growing is None
        ):  # not known (no queue watched, jobs too long for the step), not failed
            verdicts["jobs"], reasons["jobs"] = "unknown", step.backlog_note or "no queue depth samples"
        else:
            verdicts["jobs"] = "unknown" if behind else "pass"
            if behind:
                reasons["jobs"] = "generator-limited"
    return step.model_copy(
        update={
            "verdicts": verdicts,
            "sustainable": verdicts["ok"] == "pass",
            "fast": verdicts["fast"] == "pass",
            "jobs_sustainable": {"pass": True, "fail": False}.get(verdicts["jobs"]) if offload_like else None,
            "reason": _reason(verdicts, reasons, behind, step),
        }
    )


def _reason(verdicts: dict[str, Outcome], reasons: dict[str, str], behind: bool, step: Step) -> str:
    """One short line: what holds and, for the first target that does not, why."""
    if behind:
        sent = f"{step.sent_on_time:.1%}" if step.sent_on_time is not None else "?"
        head = f"generator-limited: sent {sent} of the arrivals on time (add --processes)"
        fails = [f"{t}: {reasons[t]}" for t in ("fast", "ok") if verdicts[t] == "fail"]
        return "; ".join([head, *fails])
    if verdicts["fast"] == "pass":
        text = "holds fast"
    elif verdicts["ok"] == "pass":
        text = f"holds ok only (fast: {reasons['fast']})"
    else:
        text = reasons["ok"]
    if verdicts.get("jobs") == "fail":
        text += f"; jobs: {reasons['jobs']}"
    return text

"""From searches to the capacity result: per-mode capacities, the USL and the headline (validity.py: its notes)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from bench.capacity.model import (
    Bracket,
    CapacityResult,
    Jobs,
    MaxRate,
    ModeResult,
    WorkerPoint,
    rate_text,
)
from bench.capacity.runner import MACHINE_BUSY_PERCENT
from bench.capacity.search import SAME_RATE, Search, placed
from bench.capacity.usl import fit, with_needs
from bench.capacity.validity import validity
from bench.capacity.verdict import Limits

CROSS_CHECK = 1.15  # a search step contradicting the saturated job rate by more than this is worth a note


def mode_result(
    mode: str,
    percentile: str,
    search: Search,
    offload_like: bool,
    limits_ms: tuple[float, float] = (Limits.fast_ms, Limits.slow_ms),
) -> ModeResult:
    """One mode's result from its search; limits_ms: (fast, ok) thresholds its steps were judged by."""
    b = search.brackets()
    jobs = Jobs(max_rate=b["jobs"].low, bracket=b["jobs"]) if offload_like and "jobs" in b else None
    fast_ms, slow_ms = limits_ms
    latency = {"fast": fast_ms, "ok": slow_ms}
    return ModeResult(
        percentile=percentile,
        max_rate=MaxRate(fast=b["fast"].low, ok=b["ok"].low),
        crossing=MaxRate(
            fast=search.crossing("fast", fast_ms, latency),
            ok=search.crossing("ok", slow_ms, latency),
        ),
        brackets={k: v for k, v in b.items() if k != "jobs"},
        jobs=jobs,
        steps=list(search.steps),
    )


def _holds(
    mode: str, target: str, limit_ms: float, pct: str, b: Bracket, who: str, crossing: float | None = None
) -> str:
    if b.low is None:
        if b.limited_by == "generator":
            return f"{who} could not be judged at {target} (the load generator fell behind: add --processes)"
        return f"{who} does not hold {limit_ms:,.0f} ms ({pct}) at any rate tried"
    quoted = b.low if crossing is None else crossing
    text = f"{who} holds {limit_ms:,.0f} ms ({pct}) up to {rate_text(quoted)} req/s"
    if crossing is not None and b.high is not None:
        text += (
            f" (where its {pct} crosses {limit_ms:,.0f} ms between the steps at {rate_text(b.low)}, which held, "
            f"and {rate_text(b.high)})"
        )
    elif b.limited_by == "generator":
        text = text.replace(" up to ", " up to at least ") + " (generator-limited: add --processes)"
    elif b.limited_by == "range":
        why = "the top of --max-rate" if b.complete else "--max-steps ended the search"
        text = text.replace(" up to ", " up to at least ") + f" ({why})"
    return text


def headline(res: CapacityResult, fast_ms: float, slow_ms: float) -> list[str]:
    """The sentences a person reads in ten seconds."""
    lines = []
    for mode, m in res.modes.items():
        who = f"{mode}'s API" if m.jobs is not None else mode
        fast, ok = m.brackets.get("fast"), m.brackets.get("ok")
        if fast is not None and fast.low is not None:
            lines.append(_holds(mode, "fast", fast_ms, m.percentile, fast, who, m.crossing.fast))
        elif ok is not None:
            lines.append(_holds(mode, "ok", slow_ms, m.percentile, ok, who, m.crossing.ok))
        if m.jobs is not None and m.jobs.max_rate is not None:
            if m.jobs.basis == "workers" and res.workers:
                n = min(int(k) for k in res.workers)
                lines.append(f"{mode}'s job side: {n} worker{'s complete' if n > 1 else ' completes'} "
                             f"{rate_text(m.jobs.max_rate)} jobs/s; more arrivals than that grow the backlog")  # fmt: skip
            else:
                lines.append(f"{mode}'s workers keep the backlog bounded up to at least "
                             f"{rate_text(m.jobs.max_rate)} jobs/s")  # fmt: skip
    lines += _worker_lines(res)
    return lines


def _worker_lines(res: CapacityResult) -> list[str]:
    """What the workers complete, how many a rate needs, and whether the machine is the limit."""
    rates = {int(n): w.max_job_rate for n, w in res.workers.items() if w.max_job_rate}
    if not rates:
        return []
    parts = [f"{'one worker completes' if n == 1 else f'{n} workers complete'} {rate_text(r)} jobs/s"
             if i == 0 else f"{n} workers {rate_text(r)}" for i, (n, r) in enumerate(sorted(rates.items()))]  # fmt: skip
    text = ", ".join(parts)
    u = res.usl
    if u is not None and u.sigma is not None and u.kappa is not None and len(rates) > 1:
        text += f" (USL sigma {u.sigma:.2f}, kappa {u.kappa:.3f})"
    needs = u.needs if u else []
    reachable = [n for n in needs if n.workers is not None]
    beyond = [n for n in needs if n.workers is None]
    if reachable:
        top = reachable[-1]
        plural = "s" if top.workers != 1 else ""
        text += f": at {rate_text(top.rate)} req/s{_rate_name(res, top.rate)} you need {top.workers} worker{plural}"
    lines = [text]
    if beyond:
        peak = ""
        if u and u.peak_rate:
            peak = f" (the fit peaks at {rate_text(u.peak_rate)} jobs/s)"
        elif u and u.lambda_ and u.sigma and not u.kappa:  # Amdahl: X(N) -> lambda / sigma
            peak = f" (the fit levels off at {rate_text(u.lambda_ / u.sigma)} jobs/s)"
        lines.append(
            f"no worker count keeps up with {rate_text(beyond[0].rate)} req/s{_rate_name(res, beyond[0].rate)} "
            f"on this machine{peak}"
        )
    if machine_limited(res):
        lo, hi = min(rates), max(rates)
        lines.append(
            f"the machine's cores, not the worker, are the limit: {hi} workers complete {rate_text(rates[hi])} "
            f"jobs/s against {rate_text(rates[lo])} for {lo}, on {res.meta.get('cpu_count', '?')} cores shared "
            "with the API, Redis and the load generator"
        )
    else:
        busy = [(int(n), w.machine_cpu_percent) for n, w in res.workers.items()
                if (w.machine_cpu_percent or 0) >= MACHINE_BUSY_PERCENT]  # fmt: skip
        if busy:
            n, cpu = max(busy)
            lines.append(
                f"with {n} worker{'s' if n > 1 else ''} the machine's {res.meta.get('cpu_count', '?')} cores were "
                f"{cpu or 0:.0f} % busy (shared with the API, Redis and the load generator): there the cores, "
                f"not the worker, limit the job rate, and more than {n} worker{'s' if n > 1 else ''} need more cores"
            )
    return lines


def _rate_name(res: CapacityResult, rate: float) -> str:
    """ " (sync's ok limit)": which capacity in the report a rate of "you need N workers" is."""
    for mode, m in res.modes.items():
        for target in ("ok", "fast"):
            value = getattr(m.max_rate, target)
            if value is not None and round(value, 1) == rate:
                who = f"{mode}'s API" if m.jobs is not None else mode
                return f" ({who} {target} limit)"
    return ""


def machine_limited(res: CapacityResult) -> bool:
    """More workers did not complete clearly more jobs (doubling them gave < 1.25 x) while the cores were busy
    or outnumbered by the workers: more workers would not help on this machine."""
    rates = {int(n): w.max_job_rate for n, w in res.workers.items() if w.max_job_rate}
    if len(rates) < 2:
        return False
    lo, hi = min(rates), max(rates)
    gain = rates[hi] / rates[lo]
    cores = res.meta.get("cpu_count")
    busy = any((w.machine_cpu_percent or 0) >= MACHINE_BUSY_PERCENT for w in res.workers.values())
    crowded = isinstance(cores, int) and hi >= cores
    return gain < 1 + 0.25 * (hi - lo) / lo and (busy or crowded)


def assemble(
    res: CapacityResult, worker_points: Mapping[int, WorkerPoint], cores: int | None, need_rates: list[float]
) -> CapacityResult:
    """Fill workers, usl, the job side's capacity and validity of res (modes already set)."""
    res.workers = {str(n): w for n, w in sorted(worker_points.items())}
    # the USL is fitted to rates saturated workers completed; a step whose backlog stayed bounded only
    # shows a lower bound, which would bend the curve down
    points = [(n, w.max_job_rate) for n, w in worker_points.items() if w.max_job_rate and _saturated(w)]
    if points:
        res.usl = with_needs(fit(points), need_rates)
    info, notes = _job_capacity(res, worker_points)
    res.validity = validity(res, cores)
    res.validity.info += info
    res.validity.notes += notes
    res.validity.valid = not res.validity.notes
    return res


def _saturated(w: WorkerPoint) -> bool:
    return w.step is None or bool(w.step.backlog_growing)


def _rate_cap(res: CapacityResult) -> float:
    """The highest rate a worker step may offer: the API's ok capacity of the job mode, and --max-rate."""
    lows = [m.brackets["ok"].low for m in res.modes.values() if m.jobs is not None and "ok" in m.brackets]
    top = min((low for low in lows if low is not None), default=math.inf)
    return min(top, float(res.config.get("max_rate") or math.inf))


def _job_capacity(
    res: CapacityResult, worker_points: Mapping[int, WorkerPoint]
) -> tuple[list[str], list[str]]:
    """modes.<m>.jobs.max_rate from the saturated worker step with the search's worker count (the workers
    are stable while arrivals stay below what they complete), checked against the search's own steps.
    (info, notes): a worker step that kept up below the rate cap is a lower bound nobody asked for (a note)."""
    info: list[str] = []
    notes: list[str] = []
    cap = _rate_cap(res)
    for n, w in sorted(worker_points.items()):
        if w.step is not None and not w.step.backlog_growing:
            offered = w.offered_rate or 0.0
            head = (
                f"{n} worker(s): the backlog did not grow at {rate_text(offered)} req/s, so "
                f"{rate_text(w.max_job_rate or 0)} jobs/s is a lower bound"
            )
            if offered * SAME_RATE >= cap:
                info.append(f"{head} (the API's ok capacity or --max-rate capped the rate)")
            else:
                notes.append(
                    f"{head}: the time budget ran out before a rate that saturates them (give --budget)"
                )
    if not worker_points:
        return info, notes
    n = min(worker_points)
    w = worker_points[n]
    modes = [m for m in res.modes.values() if m.jobs is not None]
    if not modes or not w.max_job_rate or not _saturated(w):
        return info, notes
    m = modes[0]
    assert m.jobs is not None
    m.jobs.max_rate, m.jobs.basis = w.max_job_rate, "workers"
    kept = [placed(s) for s in m.steps if s.backlog_growing is False]
    grew = [placed(s) for s in m.steps if s.backlog_growing]
    if kept and max(kept) > CROSS_CHECK * w.max_job_rate:
        info.append(f"jobs: the backlog stayed bounded at {rate_text(max(kept))} req/s in the search, above the "
                    f"{rate_text(w.max_job_rate)} jobs/s {n} worker(s) completed when saturated")  # fmt: skip
    if grew and min(grew) < w.max_job_rate / CROSS_CHECK:
        info.append(f"jobs: the backlog grew at {rate_text(min(grew))} req/s in the search, below the "
                    f"{rate_text(w.max_job_rate)} jobs/s {n} worker(s) completed when saturated")  # fmt: skip
    return info, notes

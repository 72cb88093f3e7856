"""From searches to the capacity result: per-mode capacities, the USL, the headline and the validity notes."""

from __future__ import annotations

from collections.abc import Mapping

from bench.capacity.model import Bracket, CapacityResult, Jobs, MaxRate, ModeResult, Validity, WorkerPoint
from bench.capacity.search import Search
from bench.capacity.usl import fit, with_needs

MACHINE_BUSY_PERCENT = 90.0  # all cores this busy during a worker step: the machine, not the worker, limits


def rate_text(rate: float) -> str:
    """12.5, 31, 1,900: whole numbers from 10 up."""
    return f"{rate:,.0f}" if rate >= 10 else f"{rate:.1f}"


def mode_result(mode: str, percentile: str, search: Search, offload_like: bool) -> ModeResult:
    """One mode's result from its search."""
    b = search.brackets()
    jobs = Jobs(max_rate=b["jobs"].low, bracket=b["jobs"]) if offload_like and "jobs" in b else None
    return ModeResult(
        percentile=percentile,
        max_rate=MaxRate(fast=b["fast"].low, ok=b["ok"].low),
        brackets={k: v for k, v in b.items() if k != "jobs"},
        jobs=jobs,
        steps=list(search.steps),
    )


def _holds(mode: str, target: str, limit_ms: float, pct: str, b: Bracket, who: str) -> str:
    if b.low is None:
        if b.limited_by == "generator":
            return f"{who} could not be judged at {target} (the load generator fell behind: add --processes)"
        return f"{who} does not hold {limit_ms:,.0f} ms ({pct}) at any rate tried"
    text = f"{who} holds {limit_ms:,.0f} ms ({pct}) up to {rate_text(b.low)} req/s"
    if b.limited_by == "generator":
        text = text.replace(" up to ", " up to at least ") + " (generator-limited: add --processes)"
    elif b.limited_by == "range":
        text = text.replace(" up to ", " up to at least ") + " (the top of --max-rate)"
    return text


def headline(res: CapacityResult, fast_ms: float, slow_ms: float) -> list[str]:
    """The sentences a person reads in ten seconds."""
    lines = []
    for mode, m in res.modes.items():
        who = f"{mode}'s API" if m.jobs is not None else mode
        fast, ok = m.brackets.get("fast"), m.brackets.get("ok")
        if fast is not None and fast.low is not None:
            lines.append(_holds(mode, "fast", fast_ms, m.percentile, fast, who))
        elif ok is not None:
            lines.append(_holds(mode, "ok", slow_ms, m.percentile, ok, who))
        if m.jobs is not None and m.jobs.max_rate is not None:
            lines.append(
                f"{mode}'s workers keep the backlog bounded up to {rate_text(m.jobs.max_rate)} jobs/s"
            )
    one = res.workers.get("1")
    u = res.usl
    if one is not None and one.max_job_rate:
        text = f"one worker completes {rate_text(one.max_job_rate)} jobs/s"
        reachable = [n for n in u.needs if n.workers is not None] if u else []
        if reachable:
            text += f": at {rate_text(reachable[-1].rate)} req/s you need {reachable[-1].workers} workers"
        lines.append(text)
    beyond = [n for n in u.needs if n.workers is None] if u else []
    if u is not None and beyond:
        peak = f" (the fit peaks at {rate_text(u.peak_rate)} jobs/s)" if u.peak_rate else ""
        lines.append(f"no worker count keeps up with {rate_text(beyond[0].rate)} req/s on this machine{peak}")
    return lines


def assemble(
    res: CapacityResult, worker_points: Mapping[int, WorkerPoint], cores: int | None, need_rates: list[float]
) -> CapacityResult:
    """Fill workers, usl and validity of res (modes already set)."""
    res.workers = {str(n): w for n, w in sorted(worker_points.items())}
    points = [(n, w.max_job_rate) for n, w in worker_points.items() if w.max_job_rate]
    if points:
        res.usl = with_needs(fit(points), need_rates)
    res.validity = validity(res, cores)
    return res


def validity(res: CapacityResult, cores: int | None) -> Validity:
    """Notes make the result not fully trustworthy; info are caveats."""
    notes: list[str] = []
    info: list[str] = []
    if res.status != "complete":
        notes.append(f"the search is {res.status}: capacities are from the steps measured so far")
    for mode, m in res.modes.items():
        brackets = dict(m.brackets)
        if m.jobs is not None:
            brackets["jobs"] = m.jobs.bracket
        for target, b in brackets.items():
            if b.limited_by == "generator":
                notes.append(
                    f"{mode} {target}: the load generator could not send more than {rate_text(b.high or 0)} "
                    "req/s on time; the capacity is a lower bound, not the server's limit (add --processes)"
                )
            elif not b.complete and b.limited_by != "none":
                notes.append(f"{mode} {target}: bracket not narrowed to 10 % (step budget or interrupted)")
        short = [s for s in m.steps if s.requests and not s.enough_samples]
        if short:
            info.append(
                f"{mode}: {len(short)} step(s) had too few samples for a trustworthy {m.percentile} "
                "(lengthen --step-duration)"
            )
    for n, w in res.workers.items():
        busy = w.machine_cpu_percent
        if busy is not None and busy >= MACHINE_BUSY_PERCENT:
            info.append(
                f"{n} worker(s): the machine's cores were {busy:.0f} % busy: its cores, not the worker, limit "
                "the job rate here"
            )
        elif cores is not None and int(n) >= cores:
            info.append(
                f"{n} worker(s) on {cores} cores shared with the API, Redis and the load generator: the cores, "
                "not the worker, are the likely limit"
            )
    if res.usl is not None and res.usl.note:
        info.append(f"USL: {res.usl.note}")
    return Validity(valid=not notes, notes=notes, info=info)

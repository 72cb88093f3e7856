"""A capacity result's validity: the notes that make it not fully trustworthy (a bracket not narrowed, steps that
inherited a backlog, a busy machine) and the caveats beside them."""

from __future__ import annotations

from bench.capacity.model import Bracket, CapacityResult, ModeResult, Step, Validity, rate_text
from bench.capacity.runner import MACHINE_BUSY_PERCENT, OTHER_CORES_MAX
from bench.capacity.search import SAME_RATE

_CUT = {
    "budget": "the time budget ran out (give more with --budget, or ask less with --precision)",
    "max-steps": "--max-steps ended the search",
    "interrupted": "the search was interrupted",
    "resolution": "the steps disagree at this resolution (non-monotone results)",
    "": "the search ended early",
}


def _not_narrowed(mode: str, target: str, b: Bracket, precision: float) -> str:
    """Which bracket was not narrowed, by how much, and what stopped it."""
    want = f"{precision:.2f}x" if precision != 1.10 else "10 %"
    if b.low is not None and b.high is not None:
        where = f"[{rate_text(b.low)}, {rate_text(b.high)}) req/s is {b.width or b.high / b.low:.2f}x wide"
    elif b.low is not None:
        where = f"holds at {rate_text(b.low)} req/s, no failing rate found above it"
    else:
        where = "unmeasured"
    return f"{mode} {target}: bracket {where}, not narrowed to {want}: {_CUT.get(b.cut_by, _CUT[''])}"


def _short_steps(mode: str, m: ModeResult, short: list[Step]) -> str:
    """The caveat for steps with too few samples for the percentile: at which rates, and whether any of them
    decides a bracket (the climbing steps far below every limit decide none)."""
    ratios = sorted(
        s.arrival_rate / s.rate for s in m.steps if s.arrival_rate and s.rate and not s.generator_limited
    )
    got = (
        ratios[len(ratios) // 2] if ratios else 1.0
    )  # brackets are rates asked x this (Search.got_per_asked)
    lows = [b.low for b in m.brackets.values() if b.low is not None]
    rates = ", ".join(rate_text(s.rate) for s in short)
    head = f"{mode}: {len(short)} step(s) had too few samples for a trustworthy {m.percentile} ({rates} req/s"
    if lows and all(s.rate * got * SAME_RATE < min(lows) for s in short):
        return f"{head}: short climbing steps below every bracket, which decide none)"
    return f"{head}: lengthen --step-duration)"


def validity(res: CapacityResult, cores: int | None) -> Validity:
    """Notes make the result not fully trustworthy; info are caveats."""
    notes: list[str] = []
    info: list[str] = []
    precision = float(res.config.get("precision") or 1.10)
    if res.status != "complete":
        notes.append(f"the search is {res.status}: capacities are from the steps measured so far")
    for mode, m in res.modes.items():
        brackets = dict(m.brackets)
        if m.jobs is not None:
            brackets["jobs"] = m.jobs.bracket
        for target, b in brackets.items():
            if target == "jobs" and m.jobs is not None and m.jobs.basis == "workers":
                continue  # measured by the worker steps, not by this bracket
            if b.limited_by == "generator":
                # said, not hidden: the figure is quoted as "at least" (issue 23: a generator-limited end is valid)
                info.append(
                    f"{mode} {target}: the load generator could not send more than {rate_text(b.high or 0)} "
                    "req/s on time; the capacity is a lower bound, not the server's limit (add --processes)"
                )
            elif not b.complete and b.limited_by != "none":
                notes.append(_not_narrowed(mode, target, b, precision))
        short = [s for s in m.steps if s.requests and not s.enough_samples]
        if short:
            info.append(_short_steps(mode, m, short))
        settles = [s.settle for s in m.steps if s.settle is not None]
        inherited = [x for x in settles if not x.restarted and ((x.queue or 0) > 0 or (x.inflight or 0) > 0)]
        if inherited:
            notes.append(
                f"{mode}: {len(inherited)} step(s) started before the previous step's requests or jobs were gone "
                "(an API started elsewhere cannot be restarted)"
            )
        restarted = [x for x in settles if x.restarted]
        if restarted:
            info.append(
                f"{mode}: the stack was restarted before {len(restarted)} step(s) (not idle within the settle "
                f"bound: {restarted[0].note})"
            )
        repeated = [s for s in m.steps if s.runs]
        if repeated:
            info.append(f"{mode}: {len(repeated)} marginal step(s) run twice and judged on both")
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
    shared = _busy_machine(res)
    if shared:
        notes.append(shared)
    if res.usl is not None and res.usl.note:
        info.append(f"USL: {res.usl.note}")
    return Validity(valid=not notes, notes=notes, info=info)


def _busy_machine(res: CapacityResult) -> str:
    """A note naming the steps during which processes outside this command used the cores ('' if none did):
    their figures are that other work's as much as the server's (a pip install beside a worker step made one
    worker complete 23 jobs/s against 28-30 in the searches before it, all cores 99 % busy at 84 req/s)."""
    steps = [(mode, s) for mode, m in res.modes.items() for s in m.steps]
    steps += [(f"{n} worker(s)", w.step) for n, w in res.workers.items() if w.step is not None]
    busy = [(who, s) for who, s in steps if (s.other_cores or 0.0) > OTHER_CORES_MAX]
    if not busy:
        return ""
    worst = max(s.other_cores or 0.0 for _, s in busy)
    where = ", ".join(f"{who} {rate_text(s.rate)} req/s" for who, s in busy[:6]) + (
        ", …" if len(busy) > 6 else ""
    )
    return (
        f"the machine was busy: processes outside this command used up to {worst:.2f} cores during "
        f"{len(busy)} step(s) ({where}); run again on a quiet machine"
    )

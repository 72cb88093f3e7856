"""`capacity --repeat N`: the figures a person quotes, per search, and their median and spread (max / min)."""

from __future__ import annotations

import statistics
from typing import Final

from bench.capacity.model import ApiCost, CapacityResult, Figure, Repeat, rate_text

# a step whose API used less than this many cores tells its fixed costs more than its cost per request
API_CORES_MIN: Final = 0.2


def figures(res: CapacityResult) -> dict[str, float | None]:
    """The quoted figures of one search: <mode>.fast, <mode>.ok (req/s: the crossing where known, else the
    highest rate that held), <mode>.jobs and workers.<n> (jobs/s)."""
    out: dict[str, float | None] = {}
    for mode, m in res.modes.items():
        out[f"{mode}.fast"] = m.quoted("fast")
        out[f"{mode}.ok"] = m.quoted("ok")
        if m.jobs is not None:
            out[f"{mode}.jobs"] = m.jobs.max_rate
    for n, w in res.workers.items():
        out[f"workers.{n}"] = w.max_job_rate
    return out


def figure(values: list[float | None]) -> Figure:
    """Median and spread of one figure over the searches (a search without the figure counts as missing)."""
    known = [v for v in values if v is not None]
    if not known:
        return Figure(values=values)
    low, high = min(known), max(known)
    spread = high / low if low > 0 else None
    return Figure(values=values, median=statistics.median(known), min=low, max=high, spread=spread)


def api_cpu(results: list[CapacityResult]) -> dict[str, ApiCost]:
    """Per mode, the API's CPU per request (µs) in each search at the highest rate asked that held "ok" in every
    search with the API at least API_CORES_MIN busy: the same load, so a search whose server was slower (the
    machine's speed moves on shared cores) shows here as well as in its figures."""
    out: dict[str, ApiCost] = {}
    for mode in dict.fromkeys(m for r in results for m in r.modes):
        per: list[dict[float, float]] = []
        for res in results:
            m = res.modes.get(mode)
            per.append({
                s.rate: api / s.arrival_rate * 1e6
                for s in (m.steps if m is not None else [])
                if s.verdicts.get("ok") == "pass" and s.arrival_rate
                and (api := (s.cores or {}).get("api")) is not None and api >= API_CORES_MIN
            })  # fmt: skip
        shared = set.intersection(*(set(costs) for costs in per)) if per else set()
        if shared:
            rate = max(shared)
            out[mode] = ApiCost(rate=rate, us=figure([costs[rate] for costs in per]))
    return out


def aggregate(results: list[CapacityResult], folders: list[str]) -> Repeat:
    """The repeat section of capacity.json from each search's result (in order)."""
    per = [figures(r) for r in results]
    names = list(dict.fromkeys(name for f in per for name in f))
    return Repeat(
        n=len(results),
        searches=folders,
        valid=[r.validity.valid for r in results],
        wall_s=[round(r.wall_s or 0.0, 1) for r in results],
        figures={name: figure([f.get(name) for f in per]) for name in names},
        api_cpu=api_cpu(results),
    )


def repeat_lines(rep: Repeat, limit: float = 1.2) -> list[str]:
    """Headline lines: each figure's median and spread, and whether the searches agree within `limit`."""
    valid = sum(rep.valid)
    lines = [f"over {rep.n} searches ({valid} valid): median (max/min)"]
    wide = []
    for name, fig in rep.figures.items():
        if fig.median is None:
            continue
        unit = "jobs/s" if name.endswith(".jobs") or name.startswith("workers.") else "req/s"
        spread = f"{fig.spread:.2f}" if fig.spread is not None else "-"
        missing = sum(v is None for v in fig.values)
        gap = f", missing in {missing}" if missing else ""
        lines.append(f"  {name} {rate_text(fig.median)} {unit} (max/min {spread}{gap})")
        if fig.spread is not None and fig.spread > limit:
            wide.append(name)
    if wide:
        lines.append(f"  spread above {limit:g}: {', '.join(wide)}")
    for mode, cost in rep.api_cpu.items():
        us = cost.us
        if us.min is None or us.max is None:
            continue
        lines.append(
            f"  {mode}'s API: {us.min:,.0f}-{us.max:,.0f} us of CPU per request at {rate_text(cost.rate)} req/s "
            f"in every search (max/min {us.spread or 0:.2f}; the same load in each search)"
        )
    return lines

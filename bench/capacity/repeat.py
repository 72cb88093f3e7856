"""`capacity --repeat N`: the figures a person quotes, per search, and their median and spread (max / min)."""

from __future__ import annotations

import statistics
from typing import Final

from bench.capacity.model import CapacityResult, Figure, Repeat, rate_text

# steps whose machine CPU tells its speed: busy enough that the requests' CPU dominates the idle baseline, far
# enough from saturation that the CPU is proportional to the work (percent of all cores), and holding "fast"
COST_BUSY: Final = (20.0, 80.0)


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


def _cost_per_request(res: CapacityResult) -> dict[tuple[str, float], float]:
    """(mode, rate asked) -> the machine's CPU (percent of all cores) per request/s got, for the steps of modes
    without a job side (a worker draining a backlog soaks up whatever CPU is left) that held "fast" and were
    neither near idle nor near saturation (a server past its knee, or bound by something else, is not)."""
    out = {}
    for mode, m in res.modes.items():
        if m.jobs is not None:
            continue
        for s in m.steps:
            cpu, got = s.machine_cpu_percent, s.arrival_rate
            if cpu is not None and got and COST_BUSY[0] <= cpu <= COST_BUSY[1] and s.fast:
                out[(mode, s.rate)] = cpu / got
    return out


def machine_cost(results: list[CapacityResult]) -> list[float | None]:
    """Each search's machine CPU per request at the (mode, rate) steps every search ran, relative to the
    median search (the median of its ratios over those steps); None for all when no step is shared."""
    per = [_cost_per_request(r) for r in results]
    shared = set.intersection(*(set(c) for c in per)) if per else set()
    if not shared or len(results) < 2:
        return [None] * len(results)
    ratios = [[c[k] / statistics.median(p[k] for p in per) for k in sorted(shared)] for c in per]
    index = [statistics.median(r) for r in ratios]
    middle = statistics.median(index)
    return [round(i / middle, 3) for i in index]


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
        machine_cost=machine_cost(results),
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
    costs = [c for c in rep.machine_cost if c is not None]
    if len(costs) > 1:
        drift = max(costs) / min(costs)
        slowest = rep.machine_cost.index(max(costs)) + 1
        lines.append(
            f"  the machine's CPU per request at the same rates moved {drift:.2f}x between searches (search "
            f"{slowest} spent the most): figures its cores bound (the top rates of noop and offload's API) move "
            "with the machine, not only with the server"
        )
    return lines

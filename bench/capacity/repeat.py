"""`capacity --repeat N`: the figures a person quotes, per search, and their median and spread (max / min)."""

from __future__ import annotations

import statistics

from bench.capacity.model import CapacityResult, Figure, Repeat, rate_text


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
    return lines

"""capacity.md and a self-contained capacity.html (jinja2, plots inlined as base64) from a CapacityResult."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Literal

from jinja2 import Environment

from bench.capacity.model import CapacityResult, ModeResult, Step, rate_text

CONTEXT = (
    "One machine shared by the load generator, the API, Redis and the workers: read capacities as ratios "
    "between modes measured side by side, not as what dedicated servers would do."
)
NICE_CONTEXT = (
    " While a mode's search measured the API, its workers ran at the lowest CPU priority (nice {nice}): they took"
    " only the CPU the API, Redis and the generator left, as workers on their own machines would take none. The"
    " worker steps ran them at normal priority."
)


def context(res: CapacityResult) -> str:
    """The report's reading note; it says so when a search ran its workers at a lowered priority."""
    nice = [s.workers_nice for m in res.modes.values() for s in m.steps if s.workers_nice]
    return CONTEXT + (NICE_CONTEXT.format(nice=max(nice)) if nice else "")


def _ms(value: float | None) -> str:
    return f"{value:,.1f}" if value is not None else "-"


def _rate(value: float | None) -> str:
    return rate_text(value) if value is not None else "-"


def _step_row(s: Step) -> list[str]:
    jobs = "" if s.jobs_sustainable is None else ("keeps up" if s.jobs_sustainable else "grows")
    err = f"{s.error_rate:.2%}" if s.error_rate is not None else "-"
    why = s.reason + (f" (run twice: {s.marginal})" if s.runs else "")
    if s.settle is not None and s.settle.note:
        why += f" (settle: {s.settle.note})"
    length = f"{s.duration_s:g}" if s.duration_s is not None else "-"
    return [_rate(s.rate), _rate(s.achieved_rate), length, str(s.requests), _ms(s.p50), _ms(s.p95), _ms(s.p99),
            err, "yes" if s.generator_limited else "", "fast" if s.fast else ("ok" if s.sustainable else "no"),
            jobs, why]  # fmt: skip


def _cap(m: ModeResult, target: Literal["fast", "ok"]) -> str:
    """A capacity cell: the quoted figure, and the highest rate that held when the quote is a crossing."""
    held, quoted = getattr(m.max_rate, target), m.quoted(target)
    return _rate(held) if quoted == held else f"{_rate(quoted)} (held {_rate(held)})"


def _repeat_rows(res: CapacityResult) -> list[list[str]]:
    """figure, median, min, max, max/min, each search's value."""
    if res.repeat is None:
        return []
    rows = list(res.repeat.figures.items())
    rows += [
        (f"{mode} API CPU us/request at {_rate(c.rate)} req/s", c.us)
        for mode, c in res.repeat.api_cpu.items()
    ]
    return [[name, _rate(f.median), _rate(f.min), _rate(f.max), f"{f.spread:.2f}" if f.spread else "-",
             ", ".join(_rate(v) for v in f.values)] for name, f in rows]  # fmt: skip


REPEAT_COLUMNS = ["figure", "median", "min", "max", "max/min", "each search"]


STEP_COLUMNS = [
    "offered/s",
    "achieved/s",
    "length s",
    "requests",
    "p50",
    "p95",
    "p99",
    "errors",
    "gen-limited",
    "holds",
    "jobs",
    "why",
]


def markdown(res: CapacityResult, plots: dict[str, str]) -> str:
    """capacity.md: headline, capacities, workers and USL, steps per mode, validity, plots."""
    out = [
        f"# Capacity: {res.id}",
        "",
        *[f"**{line}.**  " for line in res.headline],
        "",
        f"_{context(res)}_",
        "",
    ]
    out += ["## Capacity per mode", "", "| mode | fast (≤ 100 ms) | ok (≤ 1000 ms) | jobs | limited by |",
            "|---|---:|---:|---:|---|"]  # fmt: skip
    for mode, m in res.modes.items():
        jobs = _rate(m.jobs.max_rate) if m.jobs else ""
        limits = ", ".join(f"{t}: {b.limited_by}" for t, b in m.brackets.items())
        if m.jobs:
            limits += f", jobs: {m.jobs.bracket.limited_by}"
        out.append(f"| {mode} | {_cap(m, 'fast')} | {_cap(m, 'ok')} | {jobs} | {limits} |")
    if res.workers:
        out += ["", "## Workers' job capacity", "", "| workers | jobs/s | offered req/s | machine CPU |",
                "|---:|---:|---:|---:|"]  # fmt: skip
        for n, w in res.workers.items():
            cpu = f"{w.machine_cpu_percent:.0f} %" if w.machine_cpu_percent is not None else "-"
            out.append(f"| {n} | {_rate(w.max_job_rate)} | {_rate(w.offered_rate)} | {cpu} |")
    u = res.usl
    if u is not None and u.lambda_ is not None:
        out += ["", f"USL: λ = {u.lambda_:.1f} jobs/s, σ = {u.sigma:.3f}, κ = {u.kappa:.4f}"
                + (f", peak {u.peak_rate:.0f} jobs/s at {u.peak_workers:.1f} workers" if u.peak_rate else "")
                + f" ({', '.join(u.fitted)} fitted). {u.note}"]  # fmt: skip
        for need in u.needs:
            who = f"{need.workers} worker(s)" if need.workers else "no worker count on this machine"
            out.append(f"- at {_rate(need.rate)} req/s: {who}")
    for mode, m in res.modes.items():
        out += ["", f"## {mode}: steps ({m.percentile} judged)", "", "| " + " | ".join(STEP_COLUMNS) + " |",
                "|" + "---|" * len(STEP_COLUMNS)]  # fmt: skip
        for s in sorted(m.steps, key=lambda s: s.rate):
            out.append("| " + " | ".join(_step_row(s)) + " |")
    if res.repeat is not None:
        r = res.repeat
        walls = ", ".join(f"{w:.0f} s" for w in r.wall_s)
        out += ["", f"## Repeat: {r.n} searches ({sum(r.valid)} valid; wall {walls})", "",
                "| " + " | ".join(REPEAT_COLUMNS) + " |", "|" + "---|" * len(REPEAT_COLUMNS)]  # fmt: skip
        out += ["| " + " | ".join(row) + " |" for row in _repeat_rows(res)]
    v = res.validity
    out += ["", "## Validity", "", "valid" if v.valid else "**not fully valid:**"]
    out += [f"- {n}" for n in v.notes] + [f"- (info) {n}" for n in v.info]
    out += ["", "## Plots", ""] + [f"![{name}]({path})" for name, path in plots.items()]
    return "\n".join(out) + "\n"


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Capacity {{ res.id }}</title>
<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;padding:3px 8px}
td.n{text-align:right}.head{font-size:1.25em;font-weight:600}.ctx{color:#666;font-style:italic}
.bad{color:#b00}img{max-width:100%}</style></head><body>
<h1>Capacity {{ res.id }}</h1>
{% for line in res.headline %}<p class="head">{{ line }}.</p>{% endfor %}
<p class="ctx">{{ context }}</p>
<h2>Capacity per mode</h2>
<table><tr><th>mode</th><th>fast (≤ {{ fast_ms }} ms)</th><th>ok (≤ {{ slow_ms }} ms)</th><th>jobs</th>
<th>limited by</th></tr>
{% for mode, m in res.modes.items() %}<tr><td>{{ mode }}</td><td class="n">{{ cap(m, "fast") }}</td>
<td class="n">{{ cap(m, "ok") }}</td><td class="n">{{ rate(m.jobs.max_rate) if m.jobs else "" }}</td>
<td>{% for t, b in m.brackets.items() %}{{ t }}: {{ b.limited_by }} {% endfor %}
{% if m.jobs %}jobs: {{ m.jobs.bracket.limited_by }}{% endif %}</td></tr>{% endfor %}</table>
{% if res.workers %}<h2>Workers' job capacity</h2><table><tr><th>workers</th><th>jobs/s</th><th>offered</th>
<th>machine CPU</th></tr>{% for n, w in res.workers.items() %}<tr><td class="n">{{ n }}</td>
<td class="n">{{ rate(w.max_job_rate) }}</td><td class="n">{{ rate(w.offered_rate) }}</td>
<td class="n">{{ "%.0f %%"|format(w.machine_cpu_percent) if w.machine_cpu_percent is not none else "-" }}</td>
</tr>{% endfor %}</table>{% endif %}
{% if res.usl and res.usl.lambda_ is not none %}<p>USL: λ = {{ "%.1f"|format(res.usl.lambda_) }} jobs/s,
σ = {{ "%.3f"|format(res.usl.sigma) }}, κ = {{ "%.4f"|format(res.usl.kappa) }}. {{ res.usl.note }}</p><ul>
{% for need in res.usl.needs %}<li>at {{ rate(need.rate) }} req/s:
{{ "%d worker(s)"|format(need.workers) if need.workers else "no worker count on this machine" }}</li>
{% endfor %}</ul>{% endif %}
{% if res.repeat %}<h2>Repeat: {{ res.repeat.n }} searches</h2><table><tr>
{% for c in repeat_columns %}<th>{{ c }}</th>{% endfor %}</tr>{% for r in repeat_rows %}<tr>
{% for cell in r %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}</table>{% endif %}
<h2>Validity</h2>{% if res.validity.valid %}<p>valid</p>{% else %}<p class="bad">not fully valid:</p>{% endif %}
<ul>{% for n in res.validity.notes %}<li class="bad">{{ n }}</li>{% endfor %}
{% for n in res.validity.info %}<li>{{ n }}</li>{% endfor %}</ul>
<h2>Plots</h2>{% for name, data in images.items() %}<p><img alt="{{ name }}" src="data:image/png;base64,{{ data }}">
</p>{% endfor %}
{% for mode, m in res.modes.items() %}<h2>{{ mode }}: steps ({{ m.percentile }} judged)</h2><table><tr>
{% for c in columns %}<th>{{ c }}</th>{% endfor %}</tr>{% for s in m.steps|sort(attribute="rate") %}<tr>
{% for cell in row(s) %}<td{% if not loop.last %} class="n"{% endif %}>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</table>{% endfor %}
</body></html>
"""


def html(res: CapacityResult, plots: dict[str, Path], fast_ms: float, slow_ms: float) -> str:
    """capacity.html: one file, plots inlined."""
    images = {name: base64.b64encode(p.read_bytes()).decode() for name, p in plots.items() if p.exists()}
    template = Environment(autoescape=True).from_string(_HTML)
    return template.render(
        res=res, images=images, context=context(res), columns=STEP_COLUMNS, row=_step_row, rate=_rate, cap=_cap,
        fast_ms=f"{fast_ms:g}", slow_ms=f"{slow_ms:g}", repeat_columns=REPEAT_COLUMNS,
        repeat_rows=_repeat_rows(res),
    )  # fmt: skip


def write_outputs(res: CapacityResult, out_dir: Path, fast_ms: float, slow_ms: float) -> dict[str, Path]:
    """capacity.json, capacity.md, capacity.html and plots/ in out_dir; returns name -> path."""
    from bench.capacity.capacity_file import write_json
    from bench.capacity.model import CAPACITY_FILE
    from bench.capacity.plots import write_plots  # matplotlib only when writing

    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(res, out_dir / CAPACITY_FILE)
    plots = write_plots(res, out_dir / "plots", fast_ms, slow_ms)
    (out_dir / "capacity.md").write_text(markdown(res, {k: f"plots/{p.name}" for k, p in plots.items()}))
    (out_dir / "capacity.html").write_text(html(res, plots, fast_ms, slow_ms))
    return {"json": out_dir / CAPACITY_FILE, "md": out_dir / "capacity.md", "html": out_dir / "capacity.html",
            **plots}  # fmt: skip

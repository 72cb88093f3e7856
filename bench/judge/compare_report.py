"""Side-by-side comparison of two runs (no verdicts): the rows, and their Markdown and HTML renderings."""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, select_autoescape

from bench.judge.gate_eval import fmt
from bench.judge.gate_inputs import LOAD_KEYS, MissingMetric, Summary, resolve

# (label, path inside modes.<m>, unit)
MODE_METRICS = (
    ("requests", "requests", ""), ("throughput", "rps", "req/s"), ("error rate", "error_rate", "%"),
    ("p50", "latency_ms.p50", "ms"), ("p90", "latency_ms.p90", "ms"), ("p95", "latency_ms.p95", "ms"),
    ("p99", "latency_ms.p99", "ms"), ("p99.9", "latency_ms.p999", "ms"), ("max", "latency_ms.max", "ms"),
    ("mean", "latency_ms.mean", "ms"), ("jobs completed", "jobs.completed", ""), ("jobs lost", "jobs.lost", ""),
    ("jobs dead-lettered", "jobs.dead_lettered", ""), ("queue wait p95", "jobs.queue_wait_ms.p95", "ms"),
    ("end-to-end p95", "jobs.e2e_ms.p95", "ms"), ("drain", "jobs.drain_s", "s"),
)  # fmt: skip


@dataclass
class Row:
    """One compared figure: A, B and the change from A to B."""

    label: str
    a: str
    b: str
    change: str


@dataclass
class Section:
    """A titled table of rows (one per mode, plus setup and API speed-up)."""

    title: str
    rows: list[Row] = field(default_factory=list)


def _get(summary: Summary, path: str) -> Any:
    try:
        return resolve(summary, path)
    except MissingMetric:
        return None


def _num_row(label: str, a: Any, b: Any, unit: str) -> Row | None:
    numbers = [v if isinstance(v, int | float) and not isinstance(v, bool) else None for v in (a, b)]
    if numbers == [None, None]:
        return None
    na, nb = numbers
    change = "-"
    if na is not None and nb is not None:
        change = f"{(nb - na) / abs(na) * 100:+.1f} %" if na else ("0" if nb == 0 else "new")
    text = [
        "-" if n is None or (isinstance(n, float) and math.isnan(n)) else fmt(float(n), unit) for n in numbers
    ]
    return Row(label, text[0], text[1], change)


def setup_section(a: Summary, b: Summary) -> Section:
    """Load parameters, work profile, workers, commit and machine of both runs; differences marked."""
    section = Section("setup")
    keys = [f"run.load.{k}" for k in LOAD_KEYS] + ["run.workers"]
    profile = {**(_get(a, "run.work_profile") or {}), **(_get(b, "run.work_profile") or {})}
    keys += [f"run.work_profile.{k}" for k in profile]
    keys += ["run.meta.git_commit", "run.meta.host", "run.meta.cpu_count", "run.status"]
    for key in keys:
        va, vb = _get(a, key), _get(b, key)
        label = key.removeprefix("run.")
        section.rows.append(Row(label, str(va), str(vb), "same" if va == vb else "DIFFERENT"))
    return section


def sections(a: Summary, b: Summary) -> list[Section]:
    """All tables of the comparison: setup, each mode present in either run, API speed-up."""
    out = [setup_section(a, b)]
    modes = list(dict.fromkeys([*a.model.modes, *b.model.modes]))
    for mode in modes:
        section = Section(f"mode {mode}")
        for label, path, unit in MODE_METRICS:
            row = _num_row(label, _get(a, f"modes.{mode}.{path}"), _get(b, f"modes.{mode}.{path}"), unit)
            if row is not None:
                section.rows.append(row)
        out.append(section)
    speed = Section("API speed-up (sync / offload latency)")
    for p in ("p50", "p95", "p99"):
        row = _num_row(p, _get(a, f"comparison.api_speedup.{p}"), _get(b, f"comparison.api_speedup.{p}"), "x")
        if row is not None:
            speed.rows.append(row)
    if speed.rows:
        out.append(speed)
    return out


def markdown(title: str, a_name: str, b_name: str, tables: list[Section], plots: dict[str, Path]) -> str:
    """The comparison as Markdown; plots are referenced relative to the report's folder."""
    lines = [
        f"# {title}",
        "",
        f"- A: {a_name}",
        f"- B: {b_name}",
        "",
        "Side by side, without verdicts (use `offload-bench gate` to judge).",
        "",
    ]
    for section in tables:
        lines += [f"## {section.title}", "", "| figure | A | B | change |", "|---|---|---|---|"]
        lines += [f"| {r.label} | {r.a} | {r.b} | {r.change} |" for r in section.rows]
        lines.append("")
    if plots:
        lines += ["## Latency percentiles (A and B overlaid)", ""]
        lines += [f"![{mode}]({path.as_posix()})" for mode, path in plots.items()]
        lines.append("")
    return "\n".join(lines)


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.diff { color: #b00; font-weight: bold; }
img { max-width: 100%; }
</style></head><body>
<h1>{{ title }}</h1>
<p>A: <code>{{ a_name }}</code><br>B: <code>{{ b_name }}</code></p>
<p>Side by side, without verdicts (use <code>offload-bench gate</code> to judge).</p>
{% for section in sections %}
<h2>{{ section.title }}</h2>
<table><tr><th>figure</th><th>A</th><th>B</th><th>change</th></tr>
{% for r in section.rows %}<tr><td>{{ r.label }}</td><td>{{ r.a }}</td><td>{{ r.b }}</td>
<td{% if r.change == "DIFFERENT" %} class="diff"{% endif %}>{{ r.change }}</td></tr>
{% endfor %}</table>
{% endfor %}
{% if images %}<h2>Latency percentiles (A and B overlaid)</h2>
{% for mode, data in images.items() %}<figure><img alt="{{ mode }} latency percentiles"
 src="data:image/png;base64,{{ data }}"></figure>
{% endfor %}{% endif %}
</body></html>
"""


def html(title: str, a_name: str, b_name: str, tables: list[Section], plots: dict[str, Path]) -> str:
    """The comparison as one self-contained HTML page (plots embedded as PNG data URIs)."""
    images = {mode: base64.b64encode(path.read_bytes()).decode("ascii") for mode, path in plots.items()}
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    return env.from_string(_HTML).render(
        title=title, a_name=a_name, b_name=b_name, sections=tables, images=images
    )

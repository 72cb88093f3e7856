"""Tiny in-process Prometheus metrics: per-route request counts and latency histograms (text format 0.0.4).

Written by hand (a few dozen lines) rather than pulling prometheus_client: one process, no labels beyond
route/method/status, and the hot path is a dict lookup plus a bisect.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field

# seconds; dense where our targets are (fast < 100 ms, slow > 1 s)
BUCKETS_S: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


JOB_COUNTERS = ("enqueued", "completed", "retried", "dead_lettered", "redriven", "executions")


@dataclass
class Histogram:
    """Cumulative-on-render latency histogram."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS_S) + 1))
    total: int = 0
    sum_s: float = 0.0

    def observe(self, value_s: float) -> None:
        """Record one observation."""
        self.counts[bisect.bisect_left(BUCKETS_S, value_s)] += 1
        self.total += 1
        self.sum_s += value_s


@dataclass
class Registry:
    """Request counters by (method, route, status) and latency by (method, route)."""

    requests: dict[tuple[str, str, int], int] = field(default_factory=dict)
    latency: dict[tuple[str, str], Histogram] = field(default_factory=dict)

    def observe(self, method: str, route: str, status: int, elapsed_s: float) -> None:
        """Record one finished request."""
        key = (method, route, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        hist = self.latency.get((method, route))
        if hist is None:
            hist = self.latency[(method, route)] = Histogram()
        hist.observe(elapsed_s)


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(registry: Registry, stats: Mapping[str, int] | None, queue: Mapping[str, int]) -> str:
    """Prometheus text: http metrics, job counters from ob:stats (None: Redis down, omitted), queue gauges."""
    out: list[str] = [
        "# HELP offload_http_requests_total HTTP requests by method, route and status.",
        "# TYPE offload_http_requests_total counter",
    ]
    for (method, route, status), n in sorted(registry.requests.items()):
        out.append(
            f'offload_http_requests_total{{method="{method}",route="{_esc(route)}",status="{status}"}} {n}'
        )
    out += [
        "# HELP offload_http_request_duration_seconds HTTP request latency (server side).",
        "# TYPE offload_http_request_duration_seconds histogram",
    ]
    for (method, route), hist in sorted(registry.latency.items()):
        labels = f'method="{method}",route="{_esc(route)}"'
        running = 0
        for bound, count in zip(BUCKETS_S, hist.counts, strict=False):
            running += count
            out.append(f'offload_http_request_duration_seconds_bucket{{{labels},le="{bound}"}} {running}')
        out.append(f'offload_http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {hist.total}')
        out.append(f"offload_http_request_duration_seconds_sum{{{labels}}} {hist.sum_s:.6f}")
        out.append(f"offload_http_request_duration_seconds_count{{{labels}}} {hist.total}")
    counters = JOB_COUNTERS if stats is not None else ()
    for name in counters:
        metric = f"offload_jobs_{name}_total"
        out += [f"# HELP {metric} Jobs {name} (all processes, from Redis).", f"# TYPE {metric} counter"]
        out.append(f"{metric} {int((stats or {}).get(name, 0))}")
    for name, value in queue.items():
        metric = f"offload_queue_{name}"
        out += [f"# HELP {metric} arq queue {name.replace('_', ' ')}.", f"# TYPE {metric} gauge"]
        out.append(f"{metric} {value}")
    return "\n".join(out) + "\n"

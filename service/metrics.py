"""Prometheus metrics with prometheus_client: per-route request counts and latency histograms, plus job counters
and queue gauges read from Redis at scrape time.

Several uvicorn worker processes: set PROMETHEUS_MULTIPROC_DIR (an empty folder, before the processes start,
as prometheus_client's multiprocess mode requires) and every process writes its samples there; a scrape of any
process then sums them all. Without it, one process's own registry is served.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series: a timestamp per label set that nobody here graphs

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

# seconds; dense where our targets are (fast < 100 ms, slow > 1 s)
BUCKETS_S: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
JOB_COUNTERS = ("enqueued", "completed", "retried", "dead_lettered", "redriven", "executions")


class Registry:
    """The HTTP metrics of this app (one per create_app; in multiprocess mode, files shared by the processes)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "offload_http_requests",
            "HTTP requests by method, route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "offload_http_request_duration_seconds",
            "HTTP request latency (server side).",
            ["method", "route"],
            buckets=BUCKETS_S,
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, elapsed_s: float) -> None:
        """Record one finished request."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(elapsed_s)


class _Snapshot(Collector):
    """Values read from Redis for this scrape (shared by every process, so never summed across them)."""

    def __init__(self, stats: Mapping[str, int] | None, queue: Mapping[str, int], redis_up: bool) -> None:
        self.stats, self.queue, self.redis_up = stats, queue, redis_up

    def collect(self) -> list[Metric]:
        out: list[Metric] = []
        if self.stats is not None:
            for name in JOB_COUNTERS:
                family = CounterMetricFamily(
                    f"offload_jobs_{name}", f"Jobs {name} (all processes, from Redis)."
                )
                family.add_metric([], int(self.stats.get(name, 0)))
                out.append(family)
        for name, value in self.queue.items():
            out.append(
                GaugeMetricFamily(f"offload_queue_{name}", f"arq queue {name.replace('_', ' ')}.", value)
            )
        out.append(
            GaugeMetricFamily("offload_redis_up", "1 when Redis answered this scrape.", int(self.redis_up))
        )
        return out


def render(
    registry: Registry, stats: Mapping[str, int] | None, queue: Mapping[str, int], redis_up: bool
) -> bytes:
    """Prometheus text: http metrics (every process's in multiprocess mode), job counters, queue gauges."""
    scrape = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(scrape)  # type: ignore[no-untyped-call]  # untyped in prometheus_client
        http = generate_latest(scrape)
    else:
        http = generate_latest(registry.registry)
    redis_side = CollectorRegistry(auto_describe=False)
    redis_side.register(_Snapshot(stats, queue, redis_up))
    return http + generate_latest(redis_side)

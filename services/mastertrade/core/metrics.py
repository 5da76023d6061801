"""Prometheus metrics every service exports, under names the Grafana dashboard reads.

Each app gets its own registry (so several apps can live in one process, as in tests) holding:
`mastertrade_http_requests_total{service,method,route,status}`,
`mastertrade_http_request_duration_seconds{service,method,route}`,
`mastertrade_dependency_up{service,dependency}`, `mastertrade_service_info{service,version}`,
`mastertrade_queue_messages{service,queue}` (the backlog of each queue it consumes), plus the
process and Python collectors. `MetricsMiddleware` is a plain ASGI middleware (cheaper than
Starlette's BaseHTTPMiddleware) that labels requests by route template, not raw path, so
the label set stays bounded.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED_ROUTE = "unmatched"


@dataclass
class ServiceMetrics:
    """The metric families of one service, in their own registry."""

    service: str
    version: str
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.requests = Counter(
            "mastertrade_http_requests_total",
            "HTTP requests answered, by route template and status code",
            ["service", "method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "mastertrade_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template",
            ["service", "method", "route"],
            registry=self.registry,
        )
        self.dependency_up = Gauge(
            "mastertrade_dependency_up",
            "1 when the service reaches the dependency, 0 when it does not",
            ["service", "dependency"],
            registry=self.registry,
        )
        info = Gauge(
            "mastertrade_service_info",
            "Always 1; labels name the service and its version",
            ["service", "version"],
            registry=self.registry,
        )
        info.labels(service=self.service, version=self.version).set(1)
        self.queue_messages = Gauge(
            "mastertrade_queue_messages",
            "Messages ready in a queue the service consumes (its backlog), as of the last scrape",
            ["service", "queue"],
            registry=self.registry,
        )

    def set_dependency(self, dependency: str, up: bool) -> None:
        self.dependency_up.labels(service=self.service, dependency=dependency).set(1 if up else 0)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(self.service, method, route, str(status)).inc()
        self.duration.labels(self.service, method, route).observe(seconds)

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def route_template(app: ASGIApp, scope: Scope) -> str:
    """The path template of the route that answers `scope` (e.g. /api/v1/candles/{symbol})."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    for candidate in getattr(app, "routes", ()):
        match, _ = candidate.matches(scope)
        if match == Match.FULL:
            return str(getattr(candidate, "path", UNMATCHED_ROUTE))
    return UNMATCHED_ROUTE


class MetricsMiddleware:
    """Counts and times every HTTP request into a ServiceMetrics."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = route_template(scope.get("app", self.app), scope)
            elapsed = time.perf_counter() - started
            self.metrics.observe_request(scope["method"], route, status, elapsed)


async def metrics_endpoint(request: Request) -> Response:
    """GET /metrics: the registry in Prometheus' text format, queue backlogs measured now."""
    metrics: ServiceMetrics = request.app.state.metrics
    consumers = list(getattr(getattr(request.app.state, "runtime", None), "consumers", ()))
    # asked together: a slow broker delays a scrape by one timeout at most
    depths = await asyncio.gather(*(consumer.backlog() for consumer in consumers))
    for consumer, depth in zip(consumers, depths, strict=True):
        if depth is not None:
            metrics.queue_messages.labels(metrics.service, consumer.queue.name).set(depth)
    return metrics.render()

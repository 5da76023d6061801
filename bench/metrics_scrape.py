"""Cost of one Prometheus scrape of a MasterTrade service, beside prometheus-client's bare
exposition of the same series.

A service's registry is filled as a busy one's would be (every route answered with a few status
codes, its dependencies, a queue backlog; the market data service's and the risk manager's own
families on top), then scraped:

- `service /metrics`: GET /metrics through the service's ASGI stack (the metrics middleware
  counting the scrape itself, `metrics_endpoint`), in process over httpx's ASGI transport;
- `bare exposition`: `prometheus_client.generate_latest` of the same registry, nothing else.

    .venv/bin/python bench/metrics_scrape.py [--scrapes 300] [--routes 30]

Prints the median and p99 per scrape and the exposition's size; no infrastructure needed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from decimal import Decimal

import httpx
from prometheus_client import generate_latest
from starlette.applications import Starlette
from starlette.routing import Route

from mastertrade.core.metrics import MetricsMiddleware, ServiceMetrics, metrics_endpoint
from mastertrade.market_data.metrics import MarketMetrics
from mastertrade.risk.portfolio_metrics import PortfolioMetrics


def busy_metrics(routes: int) -> ServiceMetrics:
    """A registry holding what a service that has answered every route for a while holds."""
    metrics = ServiceMetrics("market_data_service", "bench")
    for route in range(routes):
        for status in (200, 404, 422, 500, 503):
            for seconds in (0.001, 0.01, 0.1):
                metrics.observe_request("GET", f"/api/v1/route{route}/{{symbol}}", status, seconds)
    for dependency in ("database", "rabbitmq", "redis"):
        metrics.set_dependency(dependency, up=True)
    metrics.queue_messages.labels(metrics.service, "strategy_service.candles").set(12)
    market = MarketMetrics(metrics.registry, metrics.service)
    for source in ("binance", "simulated"):
        for kind in ("candle", "trade", "ticker"):
            market.accept(source, kind)
    PortfolioMetrics(metrics.registry, "paper", Decimal("0.15"))
    return metrics


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def scrape_service(metrics: ServiceMetrics, scrapes: int) -> tuple[list[float], int]:
    app = Starlette(routes=[Route("/metrics", metrics_endpoint)])
    app.state.metrics = metrics
    asgi = MetricsMiddleware(app, metrics)
    transport = httpx.ASGITransport(app=asgi)
    times = []
    size = 0
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        for _ in range(scrapes):
            started = time.perf_counter()
            answer = await client.get("/metrics")
            times.append(time.perf_counter() - started)
            size = len(answer.content)
    return times, size


def scrape_bare(metrics: ServiceMetrics, scrapes: int) -> tuple[list[float], int]:
    times = []
    size = 0
    for _ in range(scrapes):
        started = time.perf_counter()
        size = len(generate_latest(metrics.registry))
        times.append(time.perf_counter() - started)
    return times, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scrapes", type=int, default=300)
    parser.add_argument("--routes", type=int, default=30)
    args = parser.parse_args()
    metrics = busy_metrics(args.routes)
    # alternate the two so that a noisy neighbour weighs on both alike
    service: list[float] = []
    bare: list[float] = []
    for _ in range(3):
        times, service_size = asyncio.run(scrape_service(metrics, args.scrapes // 3))
        service += times
        times, bare_size = scrape_bare(metrics, args.scrapes // 3)
        bare += times
    print(f"{'case':<20}{'median ms':>12}{'p99 ms':>10}{'bytes':>10}")
    for name, samples, size in (
        ("service /metrics", service, service_size),
        ("bare exposition", bare, bare_size),
    ):
        median = statistics.median(samples) * 1000
        print(f"{name:<20}{median:>12.3f}{percentile(samples, 0.99) * 1000:>10.3f}{size:>10}")
    ratio = statistics.median(service) / statistics.median(bare)
    print(f"service / bare (median): {ratio:.2f}x")


if __name__ == "__main__":
    main()

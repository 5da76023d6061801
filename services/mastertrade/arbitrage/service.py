"""What arbitrage_service does with each book ticker: detect, then store, publish and count.

`ArbitrageService.handle` is the consumer of `arbitrage_service.tickers` (routing key
`ticker.#` on the market data exchange). A message that is not a valid `BookTicker` (a
non-finite or crossed quote, a missing field) is counted and logged and dropped: it can never
become an opportunity, and keeping a stream of them would only fill the dead-letter queue.
An opportunity whose report fails because PostgreSQL, RabbitMQ or Redis is away is logged, and
reported again when a quote shows it once the route's interval is over: a ticker is not held
through an outage (it is worth nothing later), nor dead-lettered, and the second venue's poller
goes on.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter
from pydantic import ValidationError

from mastertrade.arbitrage.domain.detector import Detector
from mastertrade.arbitrage.domain.opportunity import Opportunity
from mastertrade.core.bus import publish_json
from mastertrade.core.errors import describe_errors
from mastertrade.core.market_messages import BookTicker
from mastertrade.core.metrics import ServiceMetrics
from mastertrade.core.retry import TRANSIENT
from mastertrade.core.runtime import Runtime
from mastertrade_model.topology import ARBITRAGE_ROUTING_PREFIX, SIGNALS

logger = logging.getLogger("mastertrade.arbitrage")

OPPORTUNITIES_KEY = "mastertrade:arbitrage:opportunities"
RECENT_KEPT = 100

INSERT = """
INSERT INTO arbitrage_opportunities
    (kind, venue, route, start_asset, start_amount, expected_profit, profit_bps, legs, detected_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9)
"""


class ArbitrageMetrics:
    """Quotes seen by outcome; opportunities and their expected profit by kind and asset."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        registry = metrics.registry
        self.quotes = Counter(
            "mastertrade_arbitrage_quotes_total",
            "Book tickers received, by outcome (accepted, invalid)",
            ["outcome"],
            registry=registry,
        )
        self.opportunities = Counter(
            "mastertrade_arbitrage_opportunities_total",
            "Arbitrage opportunities found and reported, by kind",
            ["kind"],
            registry=registry,
        )
        self.profit = Counter(
            "mastertrade_arbitrage_expected_profit_total",
            "Sum of the expected profit after fees of the opportunities reported",
            ["kind", "asset"],
            registry=registry,
        )


class ArbitrageService:
    """Detection state of one instance, bound to its Runtime's connections once built."""

    def __init__(
        self,
        detector: Detector,
        report_interval: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.detector = detector
        self.report_interval = report_interval
        self.clock = clock
        self._runtime: Runtime | None = None
        self._metrics: ArbitrageMetrics | None = None
        self._last_report: dict[str, float] = {}

    def bind(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._metrics = ArbitrageMetrics(runtime.metrics)

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise RuntimeError("ArbitrageService.bind(runtime) was not called")
        return self._runtime

    @property
    def metrics(self) -> ArbitrageMetrics:
        if self._metrics is None:
            raise RuntimeError("ArbitrageService.bind(runtime) was not called")
        return self._metrics

    async def handle(self, payload: dict[str, Any]) -> None:
        """One ticker message from the broker."""
        try:
            quote = BookTicker.model_validate(payload)
        except ValidationError as error:
            self.metrics.quotes.labels("invalid").inc()
            logger.warning("ignoring an invalid book ticker: %s", describe_errors(error.errors()))
            return
        await self.on_quote(quote)

    async def on_quote(self, quote: BookTicker) -> list[Opportunity]:
        """Detect on a parsed quote; report what is found. Returns what was reported."""
        self.metrics.quotes.labels("accepted").inc()
        reported = []
        for opportunity in self.detector.on_quote(quote, self.clock()):
            if not self._due(opportunity.route):
                continue
            try:
                await self.report(opportunity)
            except TRANSIENT as error:
                # a quote is worth nothing later: not held through the outage. The route stays
                # muted for the interval all the same, as part of the report may have gone out
                logger.warning("reporting %s opportunity %s failed (%s: %s); it is reported "
                               "again when seen after %.1fs", opportunity.kind,
                               opportunity.route, type(error).__name__, error,
                               self.report_interval)  # fmt: skip
                continue
            reported.append(opportunity)
        return reported

    def _due(self, route: str) -> bool:
        """One report per route per interval: a lasting mispricing is not a new finding."""
        now = time.monotonic()
        last = self._last_report.get(route)
        if last is not None and now - last < self.report_interval:
            return False
        self._last_report[route] = now
        return True

    async def report(self, opportunity: Opportunity) -> None:
        """Store, publish, keep in the recent list, count."""
        body = opportunity.as_json()
        await self.runtime.pool.execute(
            INSERT,
            opportunity.kind, opportunity.venue, opportunity.route, opportunity.start_asset,
            opportunity.start_amount, opportunity.expected_profit, opportunity.profit_bps,
            json.dumps(body["legs"]), opportunity.detected_at,
        )  # fmt: skip
        key = f"{ARBITRAGE_ROUTING_PREFIX}.{opportunity.kind}"
        await publish_json(self.runtime.channel, SIGNALS.name, key, body)
        redis = self.runtime.redis
        await redis.lpush(OPPORTUNITIES_KEY, json.dumps(body))
        await redis.ltrim(OPPORTUNITIES_KEY, 0, RECENT_KEPT - 1)
        self.metrics.opportunities.labels(opportunity.kind).inc()
        self.metrics.profit.labels(opportunity.kind, opportunity.start_asset).inc(
            float(opportunity.expected_profit)
        )
        logger.info(
            "%s opportunity %s: %s %s expected",
            opportunity.kind,
            opportunity.route,
            opportunity.expected_profit,
            opportunity.start_asset,
        )

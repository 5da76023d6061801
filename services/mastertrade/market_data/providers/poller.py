"""A collector's loop: poll, store, wait; honouring 429s and backing off after failures.

A poll is stored, its cursors moved, then published; what a broker outage kept from the bus is
published before the next poll (so nothing is polled, and counted, twice). After a stored and
published poll the next one comes `interval` seconds later. A 429 waits exactly what the
provider asked (Retry-After and its kin); a refused key (401/403) waits the longest backoff and
shows `unauthorized` in /health; malformed answers, 5xx, timeouts and database or broker
outages back off from 5 s doubling to the ceiling, with jitter. Nothing here ever stops the
service: every outcome is counted in `mastertrade_market_data_collector_polls_total` and logged.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from mastertrade.market_data.domain.events import MalformedEventError
from mastertrade.market_data.domain.observations import Observation
from mastertrade.market_data.domain.polling import backoff_seconds
from mastertrade.market_data.metrics import MarketMetrics
from mastertrade.market_data.providers.batch import Provider
from mastertrade.market_data.providers.http import (
    ProviderError,
    RateLimitedError,
    UnauthorizedError,
)
from mastertrade.market_data.providers.sink import ObservationWriter

logger = logging.getLogger("mastertrade.market_data.collectors")


class Poller:
    """Runs one provider for as long as the service runs."""

    def __init__(
        self,
        provider: Provider,
        writer: ObservationWriter,
        metrics: MarketMetrics,
        *,
        interval: float,
        max_backoff: float,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.provider = provider
        self.writer = writer
        self.metrics = metrics
        self.interval = interval
        self.max_backoff = max_backoff
        self.clock = clock
        self.sleep = sleep
        self.jitter = jitter
        self.state = "starting"
        self.failures = 0
        self.rows_written = 0
        self.last_success: str | None = None
        self.last_error = ""
        self.next_delay = 0.0
        self.unpublished: list[Observation] = []  # stored, cursors moved, not on the bus yet

    @property
    def name(self) -> str:
        return self.provider.name

    async def _publish_held(self) -> None:
        """Publish the rows stored but not yet published (a broker outage kept them)."""
        if self.unpublished:
            await self.writer.publish(self.unpublished)
            self.unpublished = []

    async def run(self) -> None:
        while True:
            await self.sleep(await self.poll_once())

    async def poll_once(self) -> float:
        """One poll and its storing; returns how long to wait before the next."""
        try:
            at = datetime.fromtimestamp(int(self.clock()), tz=UTC)
            await self._publish_held()
            batch = await self.provider.poll(at)
            written = await self.writer.store(batch.rows)
            batch.commit()  # stored: never polled again, whatever becomes of the publish
            self.unpublished = list(batch.rows)
            await self._publish_held()
        except asyncio.CancelledError:
            raise
        except RateLimitedError as error:
            return self._failed("rate_limited", "rate limited", error, error.wait)
        except UnauthorizedError as error:
            self.failures += 1
            return self._failed("unauthorized", "unauthorized", error, self.max_backoff)
        except Exception as error:
            self.failures += 1
            outcome = "malformed" if isinstance(error, MalformedEventError) else "error"
            delay = backoff_seconds(self.failures, self.max_backoff, 0.5 + self.jitter() / 2)
            return self._failed(outcome, "failing", error, delay)
        self.failures = 0
        self.rows_written += written
        self.state, self.last_error = "ok", ""
        self.last_success = at.isoformat()
        self.metrics.collector_poll(self.name, "ok")
        self.metrics.wrote("external_metrics", written)
        logger.info("%s collector stored %d observations", self.name, written)
        self.next_delay = self.interval
        return self.interval

    def _failed(self, outcome: str, state: str, error: Exception, delay: float) -> float:
        self.state = state
        known = isinstance(error, ProviderError | MalformedEventError)
        self.last_error = (str(error) if known else f"{type(error).__name__}: {error}")[:300]
        self.metrics.collector_poll(self.name, outcome)
        logger.warning("%s collector: %s; next poll in %.0fs", self.name, self.last_error, delay)
        self.next_delay = delay
        return delay

    def status(self) -> dict[str, Any]:
        """This collector in /health."""
        return {"state": self.state, "last_success": self.last_success,
                "rows_written": self.rows_written, "next_poll_seconds": round(self.next_delay),
                "last_error": self.last_error}  # fmt: skip

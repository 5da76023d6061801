"""Signals decided in batches (`mastertrade.core.batching`): one read and one write decide every
signal waiting (`decide_batch`: the same rules, in arrival order, each seeing the decisions
before it; store.py); its events are sent right after the commit by an `OutboxSender`, while the
next batch is decided. The message of each signal is acknowledged by the consumer only after its
decision committed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg
from aio_pika.abc import AbstractChannel

from mastertrade.core.batching import Batcher
from mastertrade.core.messages import Signal
from mastertrade.core.outbox import OutboxSender
from mastertrade.core.retry import retry_transient
from mastertrade.risk.adapters.store import StoredDecision, decide_batch, watch_breaker
from mastertrade.risk.domain import RiskLimits

logger = logging.getLogger("mastertrade.risk")


class DecisionBatcher(Batcher[Signal, StoredDecision]):
    """`await decide(signal)` returns its stored decision once committed (its events are on
    their way to the broker)."""

    def __init__(
        self,
        pool_of: Callable[[], asyncpg.Pool],
        channel_of: Callable[[], AbstractChannel],
        limits: RiskLimits,
        environment: str,
    ) -> None:
        super().__init__(self._decide_retrying, "signals")
        self.pool_of = pool_of
        self.limits, self.environment = limits, environment
        self.sender = OutboxSender(channel_of, "decision")

    async def decide(self, signal: Signal) -> StoredDecision:
        return await self.submit(signal)

    async def _decide_retrying(self, signals: list[Signal]) -> list[StoredDecision]:
        # an outage (or a pool not open yet at start-up) is waited out, never dead-lettered
        return await retry_transient(lambda: self._decide(signals), "deciding")

    async def watch_breaker(self) -> bool:
        """Trip the breaker if the drawdown reached the limit since the last batch (its alert
        sent as a batch's events are); whether it tripped."""
        async with self.pool_of().acquire() as connection:
            written = await watch_breaker(connection, self.limits, self.environment)
        self.sender.send(written)
        return bool(written)

    async def _decide(self, signals: list[Signal]) -> list[StoredDecision]:
        with self.sender.marking() as sent:
            async with self.pool_of().acquire() as connection:
                decided, written = await decide_batch(
                    connection, signals, self.limits, self.environment, sent
                )
        self.sender.send(written)
        return decided


async def watch_breaker_until(batcher: DecisionBatcher, stop: asyncio.Event, every: float) -> None:
    """Look at the drawdown every `every` seconds until `stop` (see `watch_breaker`)."""
    while not stop.is_set():
        try:
            if await batcher.watch_breaker():
                logger.warning("circuit breaker tripped between signals: the drawdown from the "
                               "equity peak reached the limit; no new exposure until an admin "
                               "reset")  # fmt: skip
        except Exception as error:  # the database may be down; every signal still checks it
            logger.warning("watching the drawdown failed: %s", error)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)

"""Signals decided in batches (`mastertrade.core.batching`): one transaction decides every
signal waiting (`decide_batch`: the same rules, in arrival order, each seeing the decisions
before it) and their events are published together. The message of each signal is acknowledged
by the consumer only after its decision committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import asyncpg
from aio_pika.abc import AbstractChannel

from mastertrade.core.batching import Batcher
from mastertrade.core.messages import Signal
from mastertrade.core.outbox import publish_written
from mastertrade.core.retry import retry_transient
from mastertrade.risk.adapters.store import StoredDecision, decide_batch
from mastertrade.risk.domain import RiskLimits

logger = logging.getLogger("mastertrade.risk")


class DecisionBatcher(Batcher[Signal, StoredDecision]):
    """`await decide(signal)` returns its stored decision once committed and published."""

    def __init__(
        self,
        pool_of: Callable[[], asyncpg.Pool],
        channel_of: Callable[[], AbstractChannel],
        limits: RiskLimits,
        environment: str,
    ) -> None:
        super().__init__(self._decide_retrying, "signals")
        self.pool_of, self.channel_of = pool_of, channel_of
        self.limits, self.environment = limits, environment

    async def decide(self, signal: Signal) -> StoredDecision:
        return await self.submit(signal)

    async def _decide_retrying(self, signals: list[Signal]) -> list[StoredDecision]:
        # an outage (or a pool not open yet at start-up) is waited out, never dead-lettered
        return await retry_transient(lambda: self._decide(signals), "deciding")

    async def _decide(self, signals: list[Signal]) -> list[StoredDecision]:
        async with self.pool_of().acquire() as connection:
            decided, written = await decide_batch(
                connection, signals, self.limits, self.environment
            )
            try:  # published now for latency; when this fails the outbox loop publishes later
                await publish_written(connection, self.channel_of(), written)
            except Exception as error:
                logger.warning("publishing decisions failed, the outbox loop retries: %s", error)
        return decided

"""Signals decided in batches (`mastertrade.core.batching`): one transaction decides every
signal waiting (`decide_batch`: the same rules, in arrival order, each seeing the decisions
before it); its events are sent right after the commit by an `OutboxSender`, while the next
batch is decided. The message of each signal is acknowledged by the consumer only after its
decision committed.
"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
from aio_pika.abc import AbstractChannel

from mastertrade.core.batching import Batcher
from mastertrade.core.messages import Signal
from mastertrade.core.outbox import OutboxSender
from mastertrade.core.retry import retry_transient
from mastertrade.risk.adapters.store import StoredDecision, decide_batch
from mastertrade.risk.domain import RiskLimits


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

    async def _decide(self, signals: list[Signal]) -> list[StoredDecision]:
        with self.sender.marking() as sent:
            async with self.pool_of().acquire() as connection:
                decided, written = await decide_batch(
                    connection, signals, self.limits, self.environment, sent
                )
        self.sender.send(written)
        return decided

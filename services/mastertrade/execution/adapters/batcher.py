"""Approved paper orders recorded and executed in batches (`mastertrade.core.batching`).

Each order is recorded (committed, `new`) before it is executed, as one at a time would be; the
batch is then executed in one transaction (`PaperVenue.execute_many`) and its events published
once, after the batch. Each message is acknowledged by the consumer only after its order's batch
committed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import asyncpg

from mastertrade.core.batching import Batcher
from mastertrade.core.messages import ApprovedOrder, OrderEvent
from mastertrade.core.retry import retry_transient
from mastertrade.execution.adapters.orders import record_orders


class BatchVenue(Protocol):
    async def execute_many(self, client_order_ids: Sequence[str]) -> list[OrderEvent]: ...


class OrderBatcher(Batcher[ApprovedOrder, None]):
    """`await submit(order)` returns once the order is recorded and executed (committed)."""

    def __init__(
        self,
        pool_of: Callable[[], asyncpg.Pool],
        venue: BatchVenue,
        environment: str,
        flush: Callable[[], Awaitable[None]],
    ) -> None:
        super().__init__(self._execute, "orders", after_batch=flush)  # events published once
        self.pool_of, self.venue, self.environment = pool_of, venue, environment

    async def _execute(self, orders: list[ApprovedOrder]) -> list[None]:
        ids, env = [order.client_order_id for order in orders], self.environment
        # the pool is looked up inside the retry: at start-up it may not be open yet
        await retry_transient(lambda: record_orders(self.pool_of(), orders, env), "recording")
        await retry_transient(lambda: self.venue.execute_many(ids), "executing")
        return [None] * len(orders)

"""Approved paper orders recorded and executed in batches (`mastertrade.core.batching`).

A batch is recorded and executed in one transaction (`PaperVenue.record_and_execute`: a paper
order is sent nowhere, so it needs no record committed before it is executed, unlike a live one)
and its events published once, after the batch. Each message is acknowledged by the consumer
only after its order's batch committed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from mastertrade.core.batching import Batcher
from mastertrade.core.messages import ApprovedOrder, OrderEvent
from mastertrade.core.retry import retry_transient


class BatchVenue(Protocol):
    async def record_and_execute(self, orders: Sequence[ApprovedOrder]) -> list[OrderEvent]: ...


class OrderBatcher(Batcher[ApprovedOrder, None]):
    """`await submit(order)` returns once the order is recorded and executed (committed)."""

    def __init__(self, venue: BatchVenue, flush: Callable[[], Awaitable[None]]) -> None:
        super().__init__(self._execute, "orders", after_batch=flush)  # events published once
        self.venue = venue

    async def _execute(self, orders: list[ApprovedOrder]) -> list[None]:
        await retry_transient(lambda: self.venue.record_and_execute(orders), "executing")
        return [None] * len(orders)

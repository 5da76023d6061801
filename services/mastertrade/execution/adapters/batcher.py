"""Approved paper orders recorded and executed in batches (`mastertrade.core.batching`).

A batch is recorded and executed in one transaction (`PaperVenue.record_and_execute`: a paper
order is sent nowhere, so it needs no record committed before it is executed, unlike a live one);
its events are sent right after the commit by the venue's `OutboxSender`, while the next batch is
executed. Each message is acknowledged by the consumer only after its order's batch committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from mastertrade.core.batching import Batcher
from mastertrade.core.messages import ApprovedOrder
from mastertrade.core.retry import retry_transient
from mastertrade.execution.adapters.paper import Executed


class BatchVenue(Protocol):
    async def record_and_execute(self, orders: Sequence[ApprovedOrder]) -> Executed: ...


class OrderBatcher(Batcher[ApprovedOrder, None]):
    """`await submit(order)` returns once the order is recorded and executed (committed)."""

    def __init__(self, venue: BatchVenue) -> None:
        super().__init__(self._execute, "orders")
        self.venue = venue

    async def _execute(self, orders: list[ApprovedOrder]) -> list[None]:
        await retry_transient(lambda: self.venue.record_and_execute(orders), "executing")
        return [None] * len(orders)

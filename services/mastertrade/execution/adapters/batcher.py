"""Approved paper orders recorded and executed in batches (`mastertrade.core.batching`).

A batch is recorded and executed in one transaction (`PaperVenue.record_and_execute`: a paper
order is sent nowhere, so it needs no record committed before it is executed, unlike a live one)
and its events published once, after the batch, by their outbox ids (`publish_written`): the
executor marks only its own rows, never taking the risk manager's from under it. Each message is
acknowledged by the consumer only after its order's batch committed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from mastertrade.core.batching import Batcher
from mastertrade.core.messages import ApprovedOrder
from mastertrade.core.outbox import Written
from mastertrade.core.retry import retry_transient
from mastertrade.execution.adapters.paper import Executed


class BatchVenue(Protocol):
    async def record_and_execute(self, orders: Sequence[ApprovedOrder]) -> Executed: ...


class OrderBatcher(Batcher[ApprovedOrder, None]):
    """`await submit(order)` returns once the order is recorded and executed (committed)."""

    def __init__(
        self, venue: BatchVenue, publish: Callable[[Sequence[Written]], Awaitable[None]]
    ) -> None:
        super().__init__(self._execute, "orders", after_batch=self._publish)
        self.venue, self.publish = venue, publish
        self._written: list[Written] = []

    async def _execute(self, orders: list[ApprovedOrder]) -> list[None]:
        executed = await retry_transient(lambda: self.venue.record_and_execute(orders), "executing")
        self._written.extend(executed.written)
        return [None] * len(orders)

    async def _publish(self) -> None:
        written, self._written = self._written, []
        await self.publish(written)

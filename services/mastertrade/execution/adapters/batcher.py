"""Approved paper orders recorded and executed in batches: while one batch is in the database,
the next one gathers.

Each order is recorded (committed, `new`) before it is executed, as one at a time would be; the
batch is then executed in one transaction (`PaperVenue.execute_many`) and its events published
once. A quiet stream still gets a batch of one at once. A batch that fails on something other
than an outage (retried until the database and broker are back) is retried one order at a time,
so only an order that fails on its own has its message dead-lettered; each message is
acknowledged by the consumer only after its order's batch committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import asyncpg

from mastertrade.core.messages import ApprovedOrder, OrderEvent
from mastertrade.core.retry import retry_transient
from mastertrade.execution.adapters.orders import record_orders

logger = logging.getLogger("mastertrade.execution")
MAX_BATCH = 100

Waiting = tuple[ApprovedOrder, "asyncio.Future[None]"]


class BatchVenue(Protocol):
    async def execute_many(self, client_order_ids: Sequence[str]) -> list[OrderEvent]: ...


class OrderBatcher:
    """`await submit(order)` returns once the order is recorded and executed (committed)."""

    def __init__(
        self,
        pool_of: Callable[[], asyncpg.Pool],
        venue: BatchVenue,
        environment: str,
        flush: Callable[[], Awaitable[None]],
    ) -> None:
        self.pool_of, self.venue, self.environment, self.flush = pool_of, venue, environment, flush
        self._waiting: list[Waiting] = []
        self._worker: asyncio.Task[None] | None = None
        self.batches = 0

    async def submit(self, order: ApprovedOrder) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((order, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        await future

    async def _drain(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            await self._run(batch)
            await self.flush()  # the batch's events, published once

    async def _run(self, batch: list[Waiting]) -> None:
        orders = [order for order, _ in batch]
        try:
            await self._execute(orders)
        except Exception as error:
            if len(batch) > 1:
                logger.warning("a batch of %d orders failed (%s); executing them one by one",
                               len(batch), error)  # fmt: skip
                for item in batch:
                    await self._run([item])
            elif not batch[0][1].done():
                batch[0][1].set_exception(error)
            return
        for _, future in batch:
            if not future.done():
                future.set_result(None)

    async def _execute(self, orders: list[ApprovedOrder]) -> None:
        ids, env = [order.client_order_id for order in orders], self.environment
        # the pool is looked up inside the retry: at start-up it may not be open yet
        await retry_transient(lambda: record_orders(self.pool_of(), orders, env), "recording")
        await retry_transient(lambda: self.venue.execute_many(ids), "executing")
        self.batches += 1

"""Work taken in batches: while one batch is in the database, the next one gathers.

A consumer hands over up to its prefetch count of messages at once; handling each in its own
transaction made them queue one behind the other, each paying its own BEGIN, locks, COMMIT and
round trips. A `Batcher` has one worker take every item waiting (up to `max_batch`) and hand
them to `process` together; a quiet stream still gets a batch of one at once: nothing waits for
a batch to fill. A batch that fails is retried one item at a time, so only an item that fails on
its own fails its caller (whose message is then dead-lettered); `process` itself waits out
outages (`retry_transient`), which are never an item's fault.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

logger = logging.getLogger("mastertrade.batching")
MAX_BATCH = 100

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """`await submit(item)` returns the item's result once its batch has been processed."""

    def __init__(
        self,
        process: Callable[[list[T]], Awaitable[list[R]]],
        noun: str,
        *,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self.process, self.noun = process, noun
        self.max_batch = max_batch
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._worker: asyncio.Task[None] | None = None
        self.batches = 0
        """Batches processed: what a test reads to see that batching happened."""

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._waiting:
            cut = self.max_batch
            batch, self._waiting = self._waiting[:cut], self._waiting[cut:]
            await self._run(batch)

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self.process([item for item, _ in batch])
        except Exception as error:
            if len(batch) > 1:
                logger.warning("a batch of %d %s failed (%s); trying them one by one",
                               len(batch), self.noun, error)  # fmt: skip
                for waiting in batch:
                    await self._run([waiting])
            elif not batch[0][1].done():
                batch[0][1].set_exception(error)
            return
        self.batches += 1
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

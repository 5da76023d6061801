"""Signals decided in batches: while one batch is in the database, the next one gathers.

The consumer hands over up to its prefetch count of signals at once; deciding each in its own
transaction made them queue one behind the other on the risk state's row lock, each paying its
own BEGIN, lock, COMMIT, outbox flush and connection reset. Here one worker takes every signal
waiting, decides them in one transaction (`decide_batch`: the same rules, in arrival order,
each seeing the decisions before it) and publishes their events together. A quiet stream still
gets a batch of one at once: nothing waits for a batch to fill.

A batch that fails is retried one signal at a time, so only a signal that fails on its own has
its message dead-lettered. The message of each signal is acknowledged by the consumer only
after its decision committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg
from aio_pika.abc import AbstractChannel

from mastertrade.core.messages import Signal
from mastertrade.core.outbox import publish_written
from mastertrade.core.retry import retry_transient
from mastertrade.risk.adapters.store import StoredDecision, decide_batch
from mastertrade.risk.domain import RiskLimits

logger = logging.getLogger("mastertrade.risk")
MAX_BATCH = 100

Waiting = tuple[Signal, "asyncio.Future[StoredDecision]"]


class DecisionBatcher:
    """`await decide(signal)` returns its stored decision once committed and published."""

    def __init__(
        self,
        pool_of: Callable[[], asyncpg.Pool],
        channel_of: Callable[[], AbstractChannel],
        limits: RiskLimits,
        environment: str,
    ) -> None:
        self.pool_of, self.channel_of = pool_of, channel_of
        self.limits, self.environment = limits, environment
        self._waiting: list[Waiting] = []
        self._worker: asyncio.Task[None] | None = None
        self.batches = 0

    async def decide(self, signal: Signal) -> StoredDecision:
        future: asyncio.Future[StoredDecision] = asyncio.get_running_loop().create_future()
        self._waiting.append((signal, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            await self._run(batch)

    async def _run(self, batch: list[Waiting]) -> None:
        try:
            signals = [signal for signal, _ in batch]
            # an outage (or a pool not open yet at start-up) is waited out, never dead-lettered
            decided = await retry_transient(lambda: self._decide(signals), "deciding")
        except Exception as error:
            if len(batch) > 1:
                logger.warning("a batch of %d signals failed (%s); deciding them one by one",
                               len(batch), error)  # fmt: skip
                for item in batch:
                    await self._run([item])
            elif not batch[0][1].done():
                batch[0][1].set_exception(error)
            return
        for (_, future), stored in zip(batch, decided, strict=True):
            if not future.done():
                future.set_result(stored)

    async def _decide(self, signals: list[Signal]) -> list[StoredDecision]:
        async with self.pool_of().acquire() as connection:
            decided, written = await decide_batch(
                connection, signals, self.limits, self.environment
            )
            self.batches += 1
            try:  # published now for latency; when this fails the outbox loop publishes later
                await publish_written(connection, self.channel_of(), written)
            except Exception as error:
                logger.warning("publishing decisions failed, the outbox loop retries: %s", error)
        return decided

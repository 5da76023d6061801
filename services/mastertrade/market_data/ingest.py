"""Candles from the broker into PostgreSQL: a queue consumed in batches, written with COPY.

For a consumer that stores what market_data_service publishes (another database, a replica of
the history, a backtest cluster): messages of a queue bound to `candle.#` are parsed back into
exact Klines, gathered up to BATCH messages or FLUSH seconds, upserted in one COPY + INSERT ...
ON CONFLICT, and only then acknowledged (one `multiple` ack for the batch). A malformed message
is rejected without requeue (it goes to the dead-letter exchange) and counted; a failed write
hands the whole batch back to the broker (nack with requeue), so nothing is lost or half-stored;
every field is checked first (`kline_from_message`), so no message can make every write fail.
`stop` stops consuming, then writes what is pending, a batch interrupted mid-write included.
An acknowledgement that fails (the channel closed meanwhile) is logged and the loop goes on:
the broker delivers those messages again, and the upsert stores them once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import asyncpg
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from mastertrade.core.background import stop_task
from mastertrade.market_data.domain.events import Kline, MalformedEventError, kline_from_message
from mastertrade.market_data.store import upsert_klines

logger = logging.getLogger("mastertrade.market_data.ingest")


class CandleIngest:
    """Consumes a candle queue into the candles table."""

    def __init__(
        self, queue: AbstractQueue, pool: asyncpg.Pool, batch: int = 2000, flush: float = 0.2
    ) -> None:
        self.queue = queue
        self.pool = pool
        self.batch = batch
        self.flush = flush
        self.stored = 0
        self.malformed = 0
        self._pending: list[tuple[AbstractIncomingMessage, Kline]] = []
        self._full = asyncio.Event()
        self._lock = asyncio.Lock()
        self._tag: str | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.queue.channel.set_qos(prefetch_count=self.batch * 2)
        self._tag = await self.queue.consume(self._on_message)
        self._task = asyncio.create_task(self._run(), name="candle-ingest")

    async def stop(self) -> None:
        if self._tag is not None:
            await self.queue.cancel(self._tag)
            self._tag = None
        if self._task is not None:
            await stop_task(self._task)
        await self._write()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            body = json.loads(message.body)
            if not isinstance(body, dict):
                raise MalformedEventError("message body is not a JSON object")
            kline = kline_from_message(body)
        except Exception as error:  # anything a message can make the parser raise
            self.malformed += 1
            logger.warning("rejecting a malformed candle message: %s", repr(error)[:200])
            await message.reject(requeue=False)
            return
        self._pending.append((message, kline))
        if len(self._pending) >= self.batch:
            self._full.set()

    async def _run(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: see mastertrade.core.supervisor (a stop() in the
            # turn the batch fills would be dropped and the loop never end)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.flush):
                    await self._full.wait()
            self._full.clear()
            try:
                await self._write()
            except Exception as error:  # the channel closed under an ack: the broker redelivers
                logger.warning("acknowledging stored candles failed (the broker will deliver "
                               "them again, and they are stored once): %r", error)  # fmt: skip

    async def _write(self) -> None:
        async with self._lock:
            batch, self._pending = self._pending, []
            if not batch:
                return
            last = batch[-1][0]
            try:
                await upsert_klines(self.pool, [kline for _, kline in batch])
            except asyncio.CancelledError:
                # stopped mid-write (rolled back): the batch goes back first in line, for
                # `stop`'s last write, whose `multiple` ack would otherwise cover it unstored
                self._pending[:0] = batch
                raise
            except Exception as error:
                logger.warning(
                    "storing %d candles failed, handing them back: %s", len(batch), error
                )
                await last.nack(multiple=True, requeue=True)
                return
            await last.ack(multiple=True)
            self.stored += len(batch)

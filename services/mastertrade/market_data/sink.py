"""The one entry of live market events: judged, buffered, written in batches, never crashing.

Sources call `submit` (synchronous and cheap) with parsed events, or `reject` when a message was
malformed. The guard drops duplicates and out-of-order events (counted by reason); accepted ones
wait in a buffer that a background task writes every FLUSH_INTERVAL or as soon as BATCH_SIZE are
waiting. A batch that fails to write (a dependency down) is kept and retried; if the buffer
outgrows MAX_BUFFER the oldest trades and book tickers are dropped and counted (candles only
when nothing else is left: a few thousand a day), so memory stays bounded while a dependency is
away and the history keeps its candles.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Protocol

from mastertrade.core.background import stop_task
from mastertrade.market_data.domain.events import Kline, MarketEvent, kind_of
from mastertrade.market_data.domain.sequencing import SequenceGuard, Verdict
from mastertrade.market_data.metrics import MarketMetrics

logger = logging.getLogger("mastertrade.market_data.sink")
RETRY_PAUSE = 1.0


class Writer(Protocol):
    async def write(self, events: Sequence[MarketEvent]) -> None: ...


class MarketSink:
    """Guard, buffer and batch writer of live events."""

    def __init__(
        self,
        writer: Writer,
        metrics: MarketMetrics,
        batch_size: int,
        flush_interval: float,
        max_buffer: int = 200_000,
    ) -> None:
        self.writer = writer
        self.metrics = metrics
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_buffer = max_buffer
        self.guard = SequenceGuard()
        self.written = 0
        self._buffer: list[MarketEvent] = []
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def submit(self, event: MarketEvent, source: str) -> bool:
        """Judge and buffer one event; False when it was dropped."""
        verdict = self.guard.check(event)
        if verdict is Verdict.NOT_CLOSED:
            return False
        if verdict is not Verdict.ACCEPTED:
            self.metrics.reject(source, str(verdict))
            logger.debug("dropped a %s %s from %s", verdict, kind_of(event), source)
            return False
        self.metrics.accept(source, kind_of(event))
        self._buffer.append(event)
        if len(self._buffer) >= self.batch_size:
            self._full.set()
        return True

    def reject(self, source: str, reason: str, detail: str) -> None:
        """Count and log a message that could not be parsed (its text is cut short)."""
        self.metrics.reject(source, reason)
        logger.warning("dropped a %s message from %s: %s", reason, source, detail[:200])

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="market-data-sink")

    async def stop(self) -> None:
        """Write what is buffered (one attempt), then stop."""
        if self._task is not None:
            await stop_task(self._task)
            self._task = None
        try:
            await self.flush()
        except Exception as error:
            logger.error("%d market events not written at shutdown: %s", self.pending, error)

    async def _run(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: see mastertrade.core.supervisor (a stop() in the
            # turn the batch fills would be dropped and the loop never end)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.flush_interval):
                    await self._full.wait()
            self._full.clear()
            try:
                await self.flush()
            except Exception as error:
                self.metrics.write_errors.labels(self.metrics.service).inc()
                logger.warning("writing market data failed, will retry: %s", error)
                await asyncio.sleep(RETRY_PAUSE)

    async def flush(self) -> None:
        """Write everything buffered, a batch at a time; a failed batch goes back in front."""
        while self._buffer:
            batch = self._buffer[: self.batch_size]
            del self._buffer[: len(batch)]
            try:
                await self.writer.write(batch)
            except BaseException:
                self._restore(batch)
                raise
            self.written += len(batch)

    def _restore(self, batch: list[MarketEvent]) -> None:
        self._buffer[:0] = batch
        overflow = len(self._buffer) - self.max_buffer
        if overflow > 0:
            self._buffer, dropped = shed(self._buffer, overflow)
            self.metrics.rejected.labels(self.metrics.service, "sink", "buffer_overflow").inc(
                overflow
            )
            logger.error("market data buffer full: dropped the %d oldest %s", overflow,
                         " and ".join(sorted(dropped)))  # fmt: skip

    @property
    def pending(self) -> int:
        return len(self._buffer)


def shed(events: list[MarketEvent], count: int) -> tuple[list[MarketEvent], set[str]]:
    """`events` less `count` of them, and the kinds dropped: the oldest trades and book tickers
    first, candles only when nothing else is left (a candle lost is a hole in the history that
    strategies backtest on; a ticker or a trade is superseded by the next one)."""
    others = [index for index, event in enumerate(events) if not isinstance(event, Kline)]
    candles = [index for index, event in enumerate(events) if isinstance(event, Kline)]
    gone = set((others + candles)[:count])
    kinds = {f"{kind_of(events[index])}s" for index in gone}
    return [event for index, event in enumerate(events) if index not in gone], kinds

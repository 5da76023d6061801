"""The one entry of live market events: judged, buffered, written in batches, never crashing.

Sources call `submit` (synchronous and cheap) with parsed events, or `reject` when a message was
malformed. The guard drops duplicates and out-of-order events (counted by reason); accepted ones
wait in a buffer that a background task writes every FLUSH_INTERVAL or as soon as BATCH_SIZE are
waiting. A book ticker is stamped with the time it was submitted (`received_at`), so a quote
written late, or again and again, is as old as it is. A batch that fails to write (a dependency
down) or takes longer than WRITE_TIMEOUT (a broker withholding its confirms) is kept and
retried. The buffer never holds more than MAX_BUFFER events, checked on every submit (a write
that hangs must not let it grow either): beyond it the oldest trades and book tickers are
dropped and counted (candles only when nothing else is left: a few thousand a day), so memory
stays bounded while a dependency is away and the history keeps its candles.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from mastertrade.core.background import stop_task
from mastertrade.market_data.domain.events import BookTicker, Kline, MarketEvent, kind_of
from mastertrade.market_data.domain.sequencing import SequenceGuard, Verdict
from mastertrade.market_data.metrics import MarketMetrics

logger = logging.getLogger("mastertrade.market_data.sink")
RETRY_PAUSE = 1.0
WRITE_TIMEOUT = 30.0
"""The longest one batch's write (store, cache, publish) may take before it is retried."""
SHED_LOG_SECONDS = 10.0  # while the buffer overflows, a log line this often, not one per event


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
        *,
        write_timeout: float = WRITE_TIMEOUT,
    ) -> None:
        self.writer = writer
        self.metrics = metrics
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_buffer = max_buffer
        self.write_timeout = write_timeout
        self.guard = SequenceGuard()
        self.written = 0
        self._buffer: list[MarketEvent] = []
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._shed_unlogged = 0
        self._shed_logged_at = 0.0

    def submit(self, event: MarketEvent, source: str) -> bool:
        """Judge and buffer one event; False when it was dropped."""
        verdict = self.guard.check(event)
        if verdict is Verdict.NOT_CLOSED:
            return False
        if verdict is Verdict.RESET:
            self.metrics.sequence_reset(source, kind_of(event))
            logger.warning("%s %s %s is far below the newest id seen, which cannot have been "
                           "real: ordering starts again from it (nothing to do unless this "
                           "repeats)", source, event.symbol, kind_of(event))  # fmt: skip
        elif verdict is not Verdict.ACCEPTED:
            self.metrics.reject(source, str(verdict))
            logger.debug("dropped a %s %s from %s", verdict, kind_of(event), source)
            return False
        if isinstance(event, BookTicker) and event.received_at is None:
            event = dataclasses.replace(event, received_at=datetime.now(UTC))
        self.metrics.accept(source, kind_of(event))
        self._buffer.append(event)
        if len(self._buffer) > self.max_buffer:
            self._shed(len(self._buffer) - self.max_buffer + self.max_buffer // 100)
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
                async with asyncio.timeout(self.write_timeout) as limit:
                    await self.writer.write(batch)
            except TimeoutError:
                self._restore(batch)
                if not limit.expired():  # one of the writer's own, which says which
                    raise
                raise TimeoutError(
                    f"writing {len(batch)} market events took over {self.write_timeout:g}s "
                    "(PostgreSQL, Redis or RabbitMQ not answering)"
                ) from None
            except BaseException:
                self._restore(batch)
                raise
            self.written += len(batch)

    def _restore(self, batch: list[MarketEvent]) -> None:
        self._buffer[:0] = batch
        overflow = len(self._buffer) - self.max_buffer
        if overflow > 0:
            self._shed(overflow)

    def _shed(self, count: int) -> None:
        """Drop `count` of the oldest buffered events (see `shed`), counted, and logged at most
        every SHED_LOG_SECONDS. From `submit` a hundredth of the buffer more than the overflow
        goes, so that a full buffer is not searched again on every event."""
        count = min(count, len(self._buffer))
        self._buffer, dropped = shed(self._buffer, count)
        self.metrics.rejected.labels(self.metrics.service, "sink", "buffer_overflow").inc(count)
        self._shed_unlogged += count
        now = time.monotonic()
        if now - self._shed_logged_at >= SHED_LOG_SECONDS:
            logger.error("market data buffer full (%d events, PostgreSQL, Redis or RabbitMQ "
                         "not keeping up): dropped the %d oldest %s; check those dependencies",
                         self.max_buffer, self._shed_unlogged,
                         " and ".join(sorted(dropped)))  # fmt: skip
            self._shed_unlogged, self._shed_logged_at = 0, now

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

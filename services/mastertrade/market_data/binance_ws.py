"""Binance's WebSocket market streams: one combined stream, kept alive, rotated, reconnected.

Connects to `<base>/stream?streams=btcusdt@trade/btcusdt@kline_1m/...` (aiohttp: it answers the
server's pings with pongs and pings the server itself, so a dead connection is noticed). Every
text frame goes through `event_from_frame` into the sink; a malformed one is counted and
dropped. When the connection drops, it notes the newest candle seen of each symbol, reconnects
(at once after a connection that stayed up STABLE_SECONDS, else after the next step of a
full-jitter exponential backoff, which only such a connection starts again from its first step:
a server that accepts and drops at once is not asked again and again) and then calls `on_gap`
with those (a REST backfill of what
was missed, from there: the new connection stores new minutes meanwhile, so the newest stored
candle says nothing of the gap); a drop while a backfill runs queues another after it. Binance
cuts every connection at 24 h, so after ROTATE_SECONDS a new connection is opened *before* the
old one is closed (the guard drops the overlap's duplicates): no gap, no backfill needed, unless
the old one dropped while the new one was still opening (a failing server): that gap is filled.
A connection can also skip minutes without dropping (a stall, a server that lost them): a closed
candle opening more than one interval after the newest seen of its symbol starts a backfill from
that newest one. A backfill that fails (a ban, PostgreSQL away) is tried again after
`retry_pause(error)`, until it is done: a hole is never left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp

from mastertrade.market_data.domain.binance import event_from_frame, interval_delta
from mastertrade.market_data.domain.events import Kline, MalformedEventError
from mastertrade.market_data.domain.ratelimit import backoff_delay
from mastertrade.market_data.metrics import MarketMetrics
from mastertrade.market_data.sink import MarketSink

logger = logging.getLogger("mastertrade.market_data.binance_ws")
CANDLE_INTERVAL = "1m"
"""The candles the stream carries (`@kline_1m`) and a gap's backfill fetches."""

SOURCE = "binance"
HEARTBEAT_SECONDS = 20.0
BACKOFF_BASE = 0.5
MAX_FRAME_BYTES = 1 << 20
SERVER_SHUTDOWN = "serverShutdown"  # the event Binance sends before restarting a server
GAP_RETRY_SECONDS = 5.0
STABLE_SECONDS = 60.0
"""How long a connection must stay up before the reconnect backoff starts again from its first
step. Without it a server that accepts and drops every connection at once was asked again in a
tight loop, each pass queueing a REST backfill (Binance bans an IP beyond 300 connections per
5 minutes)."""


def gap_retry_pause(error: Exception) -> float:
    """How long to wait before backfilling a gap again after `error`."""
    return GAP_RETRY_SECONDS


@dataclass
class Connection:
    """One open WebSocket and the task reading it."""

    socket: aiohttp.ClientWebSocketResponse
    opened_at: float
    reader: asyncio.Task[None] = field(init=False)

    async def close(self) -> None:
        await self.socket.close()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(self.reader, timeout=5)


class BinanceStream:
    """The live stream of a set of Binance streams into a sink."""

    def __init__(
        self,
        ws_url: str,
        streams: Sequence[str],
        *,
        sink: MarketSink,
        metrics: MarketMetrics,
        rotate_seconds: float,
        max_backoff: float,
        on_gap: Callable[[Mapping[str, datetime]], Awaitable[None]],
        rng: random.Random | None = None,
        retry_pause: Callable[[Exception], float] = gap_retry_pause,
    ) -> None:
        self.url = f"{ws_url.rstrip('/')}/stream?streams={'/'.join(streams)}"
        self.sink = sink
        self.metrics = metrics
        self.rotate_seconds = rotate_seconds
        self.max_backoff = max_backoff
        self.on_gap = on_gap
        self.rng = rng or random.Random()
        self.retry_pause = retry_pause
        self.connections = 0
        self.frames = 0
        self.failures = 0
        """Connects that failed or connections that dropped within STABLE_SECONDS, since the
        last connection that stayed up longer: the backoff's step."""
        self._gap_task: asyncio.Task[None] | None = None
        self._gap_next: dict[str, datetime] | None = None  # a gap found while one is filled
        self._streamed: dict[str, datetime] = {}  # the newest closed candle streamed, per symbol

    async def run(self) -> None:
        """Stream until cancelled."""
        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession() as session:
            current = await self._open(session)
            try:
                while True:
                    left = current.opened_at + self.rotate_seconds - loop.time()
                    done, _ = await asyncio.wait({current.reader}, timeout=max(left, 0.0))
                    if current.reader in done:
                        self.metrics.set_connected(SOURCE, False)
                        self.metrics.reconnect(SOURCE, "disconnect")
                        logger.warning("Binance stream disconnected; reconnecting")
                        await current.close()
                        await self._back_off_after(current)
                        current = await self._open(session)
                        continue
                    self._lifetime(current)
                    self.metrics.reconnect(SOURCE, "rotation")
                    logger.info("rotating the Binance stream before the 24 h cut")
                    since = self.sink.guard.newest_candles(CANDLE_INTERVAL)
                    fresh = await self._open(session, gap=False)
                    if current.reader.done():  # it dropped while the new one was opening
                        logger.warning("the Binance stream dropped during its rotation")
                        self._start_gap_backfill(since)
                    await current.close()
                    current = fresh
            finally:
                self.metrics.set_connected(SOURCE, False)
                await current.close()
                if self._gap_task is not None:
                    self._gap_task.cancel()

    async def _open(self, session: aiohttp.ClientSession, gap: bool = True) -> Connection:
        since = self.sink.guard.newest_candles(CANDLE_INTERVAL)  # before new candles come
        while True:
            try:
                socket = await session.ws_connect(
                    self.url, heartbeat=HEARTBEAT_SECONDS, max_msg_size=MAX_FRAME_BYTES
                )
                break
            except (aiohttp.ClientError, OSError, TimeoutError) as error:
                # not reset by a connect that succeeds: only by a connection that stays up
                self.failures += 1
                delay = backoff_delay(self.failures, BACKOFF_BASE, self.max_backoff, self.rng)
                self.metrics.reconnect(SOURCE, "error")
                logger.warning("Binance stream connect failed (%s); retry in %.1fs", error, delay)
                await asyncio.sleep(delay)
        self.connections += 1
        self.metrics.set_connected(SOURCE, True)
        connection = Connection(socket, asyncio.get_running_loop().time())
        connection.reader = asyncio.create_task(self._read(socket), name="binance-ws-reader")
        if gap:
            self._streamed.clear()  # the reconnect's gap backfill covers what was missed
            self._start_gap_backfill(since)
        return connection

    def _lifetime(self, connection: Connection) -> float:
        """Seconds `connection` has been up; STABLE_SECONDS or more resets the backoff."""
        lived = asyncio.get_running_loop().time() - connection.opened_at
        if lived >= STABLE_SECONDS:
            self.failures = 0
        return lived

    async def _back_off_after(self, dropped: Connection) -> None:
        """Wait before replacing `dropped`: not at all when it had stayed up STABLE_SECONDS,
        else the backoff's next step."""
        lived = self._lifetime(dropped)
        if lived >= STABLE_SECONDS:
            return
        self.failures += 1
        delay = backoff_delay(self.failures, BACKOFF_BASE, self.max_backoff, self.rng)
        logger.warning("the Binance stream dropped %.1fs after it opened; reconnecting in "
                       "%.1fs", lived, delay)  # fmt: skip
        await asyncio.sleep(delay)

    def _start_gap_backfill(self, since: dict[str, datetime]) -> None:
        if self._gap_task is not None and not self._gap_task.done():
            # the running one may have passed the symbols this gap is in: another follows it
            self._gap_next = _earliest(since, self._gap_next or {})
            return
        self._gap_task = asyncio.create_task(self._backfill_gap(since), name="binance-gap")

    async def _backfill_gap(self, since: dict[str, datetime]) -> None:
        while True:
            try:
                await self.on_gap(since)
            except Exception as error:
                pause = self.retry_pause(error)
                logger.error("backfilling the candles the Binance stream missed failed; trying "
                             "again in %.0fs: %s", pause, error)  # fmt: skip
                await asyncio.sleep(pause)
                # a gap found meanwhile joins this one: the earliest of each symbol wins
                since, self._gap_next = _earliest(since, self._gap_next or {}), None
                continue
            if self._gap_next is None:
                return
            since, self._gap_next = self._gap_next, None

    async def _read(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        async for message in socket:
            if message.type is aiohttp.WSMsgType.TEXT:
                self.frames += 1
                if SERVER_SHUTDOWN in message.data:
                    # Binance announces a server restart: reconnect now (and backfill the gap)
                    logger.info("Binance announced a server shutdown; reconnecting")
                    return
                self.handle_frame(message.data)
            elif message.type is aiohttp.WSMsgType.BINARY:
                self.sink.reject(SOURCE, "malformed", "binary frame on a text stream")
            elif message.type is aiohttp.WSMsgType.ERROR:
                logger.warning("Binance stream error: %s", socket.exception())
                return

    def handle_frame(self, text: str) -> None:
        """Parse one frame into the sink; a malformed or implausible frame is counted (by
        reason), never raised."""
        try:
            event = event_from_frame(text, datetime.now(UTC))
        except MalformedEventError as error:
            self.sink.reject(SOURCE, error.reason, str(error))
            return
        except Exception as error:  # a parser fault: one frame lost, not the connection
            logger.exception("a frame could not be parsed")
            self.sink.reject(SOURCE, "malformed", repr(error)[:200])
            return
        self.sink.submit(event, SOURCE)
        # a duplicate counts too: a backfill may have stored the same candle a moment before
        if isinstance(event, Kline) and event.closed and event.interval == CANDLE_INTERVAL:
            self._note_streamed(event)

    def _note_streamed(self, candle: Kline) -> None:
        """Keep the newest closed candle this connection streamed of its symbol; one more than
        an interval after the one before means the stream skipped some: backfilled from there.
        Judged on what the stream itself sent, not on what a backfill has reached meanwhile
        (its pages move the guard while the history is still coming in)."""
        before = self._streamed.get(candle.symbol)
        if before is not None and candle.open_time <= before:
            return
        self._streamed[candle.symbol] = candle.open_time
        if before is not None and candle.open_time - before > interval_delta(CANDLE_INTERVAL):
            logger.warning("the Binance stream skipped candles of %s after %s; backfilling them",
                           candle.symbol, before)  # fmt: skip
            self._start_gap_backfill({candle.symbol: before})


def _earliest(*gaps: Mapping[str, datetime]) -> dict[str, datetime]:
    """Gaps merged: every symbol of any of them, from its earliest start."""
    merged: dict[str, datetime] = {}
    for gap in gaps:
        for symbol, start in gap.items():
            merged[symbol] = min(start, merged.get(symbol, start))
    return merged

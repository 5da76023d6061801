"""Binance's user-data stream: fills as they happen, from `executionReport` events.

A listen key (POST /api/v3/userDataStream) opens `<ws base>/ws/<listenKey>`; the key is kept
alive every KEEPALIVE_SECONDS (PUT). A connection is given up, closed, and a new one opened with
a new listen key (after the backoff) whenever it could go silent: the connection drops, a
keep-alive fails (Binance forgot the key: no event would come on it), or Binance says the key
expired (`listenKeyExpired`). What happened meanwhile comes from the executor's REST poll.
Each report is booked like a REST answer, so a fill seen by both is booked once (by trade id).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable

import asyncpg
from websockets.asyncio.client import ClientConnection, connect

from mastertrade.core.background import stop_task
from mastertrade.execution.adapters.binance import BinanceClient, BinanceError
from mastertrade.execution.adapters.live_books import book_report
from mastertrade.execution.domain.binance_status import parse_execution_report

logger = logging.getLogger("mastertrade.execution.stream")
KEEPALIVE_SECONDS = 30 * 60
FIRST_BACKOFF, MAX_BACKOFF = 0.5, 30.0
STEADY_SECONDS = 60.0  # a connection that lasted this long starts the backoff over


class StreamEndedError(Exception):
    """The stream must be opened again, with a new listen key; the message says why."""


async def _keep_alive(client: BinanceClient, listen_key: str) -> None:
    while True:
        await asyncio.sleep(KEEPALIVE_SECONDS)
        try:
            await client.keep_alive(listen_key)
        except BinanceError as error:
            raise StreamEndedError(f"keeping the listen key alive failed: {error}") from error


async def book_stream_message(pool: asyncpg.Pool, raw: str | bytes, quote_asset: str) -> bool:
    """Book one stream message; True when it was an execution report. StreamEndedError on
    `listenKeyExpired`: nothing more comes on this key."""
    event = json.loads(raw)
    if not isinstance(event, dict):
        return False
    if event.get("e") == "listenKeyExpired":
        raise StreamEndedError("Binance says the listen key expired (listenKeyExpired)")
    if event.get("e") != "executionReport":
        return False
    client_order_id, state, trade = parse_execution_report(event)
    trades = [trade] if trade is not None else []
    await book_report(pool, client_order_id, state, trades, quote_asset)
    return True


async def _read(
    socket: ClientConnection, pool: Callable[[], asyncpg.Pool], quote_asset: str
) -> None:
    async for raw in socket:
        await book_stream_message(pool(), raw, quote_asset)
    raise StreamEndedError("Binance closed the stream")


async def _stream_once(
    client: BinanceClient, ws_url: str, pool: Callable[[], asyncpg.Pool], quote_asset: str
) -> None:
    """One listen key and its connection, until either fails (raises why)."""
    listen_key = await client.new_listen_key()
    async with connect(f"{ws_url.rstrip('/')}/ws/{listen_key}") as socket:
        reader = asyncio.create_task(_read(socket, pool, quote_asset))
        keeper = asyncio.create_task(_keep_alive(client, listen_key))
        try:
            done, _ = await asyncio.wait({reader, keeper}, return_when=asyncio.FIRST_COMPLETED)
            error = next(iter(done)).exception()
        finally:
            await asyncio.gather(stop_task(reader), stop_task(keeper))
        raise error or StreamEndedError("the stream stopped")


async def run_user_stream(
    client: BinanceClient, ws_url: str, pool: Callable[[], asyncpg.Pool], quote_asset: str
) -> None:
    """Follow the stream until cancelled, reconnecting with backoff."""
    delay = FIRST_BACKOFF
    while True:
        started = time.monotonic()
        try:
            await _stream_once(client, ws_url, pool, quote_asset)
        except Exception as error:
            if time.monotonic() - started >= STEADY_SECONDS:
                delay = FIRST_BACKOFF
            logger.warning("user-data stream ended (%s); reconnecting with a new listen key in "
                           "%.1fs", error, delay)  # fmt: skip
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_BACKOFF)

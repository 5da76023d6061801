"""Binance's user-data stream: fills as they happen, from `executionReport` events.

A listen key (POST /api/v3/userDataStream) opens `<ws base>/ws/<listenKey>`; the key is kept
alive every KEEPALIVE_SECONDS (PUT) and the stream reconnects with backoff when it drops.
Each report is booked like a REST answer, so a fill seen by both is booked once (by trade id).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

import asyncpg
from websockets.asyncio.client import connect

from mastertrade.core.background import stop_task
from mastertrade.execution.adapters.binance import BinanceClient
from mastertrade.execution.adapters.live_books import book_report
from mastertrade.execution.domain.binance_status import parse_execution_report

logger = logging.getLogger("mastertrade.execution.stream")
KEEPALIVE_SECONDS = 30 * 60


async def _keep_alive(client: BinanceClient, listen_key: str) -> None:
    while True:
        await asyncio.sleep(KEEPALIVE_SECONDS)
        await client.keep_alive(listen_key)


async def book_stream_message(pool: asyncpg.Pool, raw: str | bytes, quote_asset: str) -> bool:
    """Book one stream message; True when it was an execution report."""
    event = json.loads(raw)
    if not isinstance(event, dict) or event.get("e") != "executionReport":
        return False
    client_order_id, state, trade = parse_execution_report(event)
    trades = [trade] if trade is not None else []
    await book_report(pool, client_order_id, state, trades, quote_asset)
    return True


async def _stream_once(
    client: BinanceClient, ws_url: str, pool: Callable[[], asyncpg.Pool], quote_asset: str
) -> None:
    listen_key = await client.new_listen_key()
    keeper = asyncio.create_task(_keep_alive(client, listen_key))
    try:
        async with connect(f"{ws_url.rstrip('/')}/ws/{listen_key}") as socket:
            async for raw in socket:
                await book_stream_message(pool(), raw, quote_asset)
    finally:
        await stop_task(keeper)


async def run_user_stream(
    client: BinanceClient, ws_url: str, pool: Callable[[], asyncpg.Pool], quote_asset: str
) -> None:
    """Follow the stream until cancelled, reconnecting with backoff."""
    delay = 0.5
    while True:
        try:
            await _stream_once(client, ws_url, pool, quote_asset)
            delay = 0.5
        except Exception as error:
            logger.warning("user-data stream dropped (%s); reconnecting in %.1fs", error, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 30.0)

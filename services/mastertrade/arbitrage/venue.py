"""A second price source: any venue that speaks Binance's REST API (Binance US, testnet, a
local server), polled for book tickers of the watched symbols.

`GET <url>/api/v3/ticker/bookTicker?symbols=["BTCUSDT",...]` answers
`[{"symbol", "bidPrice", "bidQty", "askPrice", "askQty"}, ...]`. The answer carries no time:
a quote is stamped when it arrives, so a slow answer is never fresher than it is.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import ValidationError

from mastertrade.core.market_messages import BookTicker

logger = logging.getLogger("mastertrade.arbitrage.venue")

BOOK_TICKER_PATH = "/api/v3/ticker/bookTicker"


def parse_book_tickers(venue: str, answer: Any, received: datetime) -> tuple[list[BookTicker], int]:
    """Valid quotes of a bookTicker answer, and how many entries were refused."""
    if not isinstance(answer, list):
        return [], 1
    quotes, refused = [], 0
    for entry in answer:
        try:
            quotes.append(
                BookTicker.model_validate(
                    {
                        "symbol": entry["symbol"],
                        "bid": entry["bidPrice"],
                        "bid_qty": entry["bidQty"],
                        "ask": entry["askPrice"],
                        "ask_qty": entry["askQty"],
                        "time": received,
                        "venue": venue,
                    }
                )
            )
        except (KeyError, TypeError, ValidationError):
            refused += 1
    return quotes, refused


class VenuePoller:
    """Polls one venue every `interval` seconds and hands each quote to `on_quote`."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        venue: str,
        symbols: Iterable[str],
        interval: float,
        on_quote: Callable[[BookTicker], Awaitable[object]],
    ) -> None:
        self.client = client
        self.venue = venue
        self.symbols = sorted(symbols)
        self.interval = interval
        self.on_quote = on_quote
        self.refused = 0

    async def poll_once(self) -> int:
        """One request; returns the number of quotes handed on."""
        params = {"symbols": json.dumps(self.symbols, separators=(",", ":"))}
        response = await self.client.get(BOOK_TICKER_PATH, params=params)
        response.raise_for_status()
        quotes, refused = parse_book_tickers(self.venue, response.json(), datetime.now(UTC))
        self.refused += refused
        for quote in quotes:
            await self.on_quote(quote)
        return len(quotes)

    async def run(self) -> None:
        """Poll until cancelled; an error is logged and the next poll tried."""
        while True:
            try:
                await self.poll_once()
            except (httpx.HTTPError, ValueError) as error:
                logger.warning("polling %s failed: %s", self.venue, type(error).__name__)
            except Exception:  # anything else must not end the polling unseen
                logger.exception("handling %s's quotes failed; polling goes on", self.venue)
            await asyncio.sleep(self.interval)

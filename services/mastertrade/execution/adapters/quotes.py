"""Quotes to fill and to value against: the top of book in Redis, refused when stale."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from decimal import Decimal

import redis.asyncio as aioredis

from mastertrade.core.prices import PriceUnavailableError, fetch_book
from mastertrade.execution.domain.paper import Quote


class Quotes:
    def __init__(self, redis: Callable[[], aioredis.Redis], max_age: float) -> None:
        self.redis, self.max_age = redis, max_age

    async def quote(self, symbol: str) -> Quote | str:
        """The current quote, or the reason there is none usable."""
        try:
            book = await fetch_book(self.redis(), symbol)
        except PriceUnavailableError as error:
            return str(error)
        age = time.time() - book.ts_ms / 1000
        if self.max_age > 0 and age > self.max_age:
            return (
                f"the {symbol} quote is {age:.0f}s old "
                f"(PRICE_MAX_AGE_SECONDS is {self.max_age:.0f})"
            )
        return Quote(book.bid, book.ask)

    async def marks(self, symbols: Iterable[str]) -> dict[str, Decimal]:
        """Mid prices of the symbols that have a usable quote."""
        found: dict[str, Decimal] = {}
        for symbol in set(symbols):
            quote = await self.quote(symbol)
            if isinstance(quote, Quote):
                found[symbol] = (quote.bid + quote.ask) / 2
        return found

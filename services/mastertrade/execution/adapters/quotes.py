"""Quotes to fill and to value against: the top of book in Redis, refused when stale.

`marks` values the symbols asked for and those given as `always` (live: BNB<QUOTE>, the fee
asset the account's equity counts whether or not the books hold a position in it)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from decimal import Decimal

import redis.asyncio as aioredis

from mastertrade.core.amounts import exact_arithmetic
from mastertrade.core.prices import PriceUnavailableError, TopOfBook, fetch_books
from mastertrade.execution.domain.paper import Quote


class Quotes:
    def __init__(
        self, redis: Callable[[], aioredis.Redis], max_age: float, always: Iterable[str] = ()
    ) -> None:
        self.redis, self.max_age = redis, max_age
        self.always = tuple(always)  # the symbols `marks` values, asked for or not

    def _usable(self, symbol: str, book: TopOfBook | PriceUnavailableError) -> Quote | str:
        if isinstance(book, PriceUnavailableError):
            return str(book)
        age = time.time() - book.age_from_ms / 1000
        if self.max_age > 0 and age > self.max_age:
            return (
                f"the {symbol} quote is {age:.0f}s old "
                f"(PRICE_MAX_AGE_SECONDS is {self.max_age:.0f})"
            )
        # written on a clock running ahead of this one: its age cannot be told, and it would
        # never read as stale, were the feed to stop (a quote's own market time may run ahead
        # of any clock: only the writer's stamp is held to this)
        if self.max_age > 0 and book.seen_ms is not None and -age > self.max_age:
            return (
                f"the {symbol} quote was written {-age:.0f}s ahead of this clock (more than "
                f"PRICE_MAX_AGE_SECONDS, {self.max_age:.0f}): the two clocks disagree"
            )
        return Quote(book.bid, book.ask)

    async def many(self, symbols: Iterable[str]) -> dict[str, Quote | str]:
        """Each symbol's current quote, or the reason there is none usable (one round trip)."""
        wanted = sorted(set(symbols))
        books = await fetch_books(self.redis(), wanted) if wanted else {}
        return {symbol: self._usable(symbol, book) for symbol, book in books.items()}

    async def quote(self, symbol: str) -> Quote | str:
        """The current quote, or the reason there is none usable."""
        return (await self.many([symbol]))[symbol]

    async def marks(self, symbols: Iterable[str]) -> dict[str, Decimal]:
        """Mid prices of the symbols, and of `always`, that have a usable quote."""
        return mids(await self.many([*symbols, *self.always]))


def mids(quotes: dict[str, Quote | str]) -> dict[str, Decimal]:
    with exact_arithmetic():  # a half is exact: the mid of a quote, whatever its digits
        return {s: (q.bid + q.ask) / 2 for s, q in quotes.items() if isinstance(q, Quote)}

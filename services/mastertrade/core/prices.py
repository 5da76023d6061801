"""The current top of book of a symbol in Redis: the one definition of its key and format.

Market data writes, the order executor reads. Key `mastertrade:book:<SYMBOL>` (e.g.
`mastertrade:book:BTCUSDT`), a Redis hash with decimal strings:

    bid  best bid price        ask  best ask price
    ts   time of the quote, Unix epoch milliseconds (integer string)
    seen when the writer got it, on the writer's clock (the same unit; optional)

`ts` is the market's time: not the wall clock's in a simulated market (ahead of it when it runs
faster). `seen` is when a Binance ticker arrived, or when a simulated one was written. How old a
quote is (is market data still flowing?) is measured from `seen` where there is one.
`write_book` sets them in one HSET; `parse_book` validates what was read (finite, positive and
within the platform's amount bounds, bid <= ask) so a corrupt or missing quote is refused, never
filled against.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import redis.asyncio as aioredis

from mastertrade.core.amounts import AmountError, check_finite_amount

BOOK_KEY_PREFIX = "mastertrade:book:"


class PriceUnavailableError(Exception):
    """No usable top of book for a symbol; the message says why."""


@dataclass(frozen=True)
class TopOfBook:
    symbol: str
    bid: Decimal
    ask: Decimal
    ts_ms: int
    seen_ms: int | None = None  # when the writer got it, on the writer's clock

    @property
    def age_from_ms(self) -> int:
        """The stamp a quote's age counts from: when the writer got it, else the quote's time."""
        return self.seen_ms if self.seen_ms is not None else self.ts_ms

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2


def book_key(symbol: str) -> str:
    """The Redis key of a symbol's top of book."""
    return f"{BOOK_KEY_PREFIX}{symbol.upper()}"


def _decimal(fields: Mapping[str, str], name: str, symbol: str) -> Decimal:
    try:
        value = Decimal(fields[name])
    except (KeyError, InvalidOperation):
        raise PriceUnavailableError(f"{book_key(symbol)} has no valid {name!r}") from None
    try:
        check_finite_amount(value)
    except AmountError as error:
        raise PriceUnavailableError(f"{book_key(symbol)} has a bad {name!r}: {error}") from None
    if value <= 0:
        raise PriceUnavailableError(f"{book_key(symbol)} has a bad {name!r}: {value}")
    return value


def parse_book(symbol: str, fields: Mapping[str, str]) -> TopOfBook:
    """The quote from a hash's fields, or PriceUnavailableError."""
    if not fields:
        raise PriceUnavailableError(f"no quote for {symbol} in Redis ({book_key(symbol)})")
    bid, ask = _decimal(fields, "bid", symbol), _decimal(fields, "ask", symbol)
    if bid > ask:
        raise PriceUnavailableError(f"{book_key(symbol)} is crossed: bid {bid} > ask {ask}")
    try:
        ts_ms = int(fields.get("ts", "0"))
        seen_ms = int(fields["seen"]) if "seen" in fields else None
    except ValueError:
        raise PriceUnavailableError(f"{book_key(symbol)} has a bad 'ts' or 'seen'") from None
    return TopOfBook(symbol.upper(), bid, ask, ts_ms, seen_ms)


def _text(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else str(k)): (
            v.decode() if isinstance(v, bytes) else str(v)
        )
        for k, v in raw.items()
    }


async def fetch_book(client: aioredis.Redis, symbol: str) -> TopOfBook:
    """Read and validate a symbol's top of book."""
    raw = await client.hgetall(book_key(symbol))
    return parse_book(symbol, _text(raw))


def quote_fields(book: TopOfBook) -> dict[str, str]:
    """The hash fields of a top of book, as `parse_book` reads them."""
    fields = {"bid": format(book.bid, "f"), "ask": format(book.ask, "f"), "ts": str(book.ts_ms)}
    if book.seen_ms is not None:
        fields["seen"] = str(book.seen_ms)
    return fields


async def fetch_books(
    client: aioredis.Redis, symbols: Sequence[str]
) -> dict[str, TopOfBook | PriceUnavailableError]:
    """Several symbols' tops of book in one round trip; each a book or the error saying why it
    is unusable."""
    async with client.pipeline(transaction=False) as pipe:
        for symbol in symbols:
            pipe.hgetall(book_key(symbol))
        raws = await pipe.execute()
    found: dict[str, TopOfBook | PriceUnavailableError] = {}
    for symbol, raw in zip(symbols, raws, strict=True):
        try:
            found[symbol] = parse_book(symbol, _text(raw))
        except PriceUnavailableError as error:
            found[symbol] = error
    return found


async def write_book(client: aioredis.Redis, book: TopOfBook) -> None:
    """Store a top of book (market data's side; tests and the bench use it too)."""
    await client.hset(book_key(book.symbol), mapping=quote_fields(book))  # type: ignore[arg-type]

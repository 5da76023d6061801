"""Where accepted market events go: PostgreSQL first, then Redis, then the market data exchange.

Candles, trades and book tickers are upserted in one batch each (`store`); then Redis gets the
latest price (`market:price:<SYMBOL>`, from the newest trade or closed candle) and the top of
book (`market:book:<SYMBOL>`, a hash of the book ticker message's fields, and
the order executor's quote `mastertrade:book:<SYMBOL>` in the format `mastertrade.core.prices`
defines, which paper fills and valuations read); then every event is published on
`mastertrade.market_data` with its routing key, each publish confirmed by the broker (within
PUBLISH_TIMEOUT). Storing comes first so that a consumer reacting to a candle finds it in the
database. A failure raises: the caller keeps the batch and tries again (writes are idempotent;
the bus is at-least-once). A quote's `seen` is when its ticker was received, never when it was
written, so a batch written again and again during a broker outage leaves a quote that ages and
is refused as stale, not a frozen one that looks fresh.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aio_pika
import asyncpg
import redis.asyncio as aioredis
from aio_pika.abc import AbstractChannel, AbstractExchange

from mastertrade.core.prices import TopOfBook, book_key, quote_fields
from mastertrade.market_data.domain.events import (
    BookTicker,
    Kline,
    MarketEvent,
    Trade,
    routing_key,
    to_message,
)
from mastertrade.market_data.metrics import MarketMetrics
from mastertrade.market_data.store import insert_book_tickers, insert_trades, upsert_klines
from mastertrade_model.topology import MARKET_DATA

PRICE_KEY = "market:price:{symbol}"
BOOK_KEY = "market:book:{symbol}"
PUBLISH_TIMEOUT = 10.0
"""The longest the broker may take to confirm a batch's messages before the batch is retried."""
RECEIVED_STAMPED = "binance"
"""The venue whose book tickers carry the time they arrived (they have no time of their own)."""


@dataclass(frozen=True)
class Connections:
    """Getters of the live clients (they raise while a dependency is down)."""

    pool: Callable[[], asyncpg.Pool]
    redis: Callable[[], aioredis.Redis]
    channel: Callable[[], AbstractChannel]


def split(events: Sequence[MarketEvent]) -> tuple[list[Kline], list[Trade], list[BookTicker]]:
    """Events by kind, in arrival order."""
    klines = [e for e in events if isinstance(e, Kline)]
    trades = [e for e in events if isinstance(e, Trade)]
    books = [e for e in events if isinstance(e, BookTicker)]
    return klines, trades, books


def as_quote(book: BookTicker, venue: str) -> TopOfBook:
    """The executor's quote of a book ticker, stamped `seen` when the service got it
    (`received_at`, which the sink sets), never when it is written: a batch written again and
    again while the broker is away must not make an old quote look fresh. Unstamped, a Binance
    ticker's time is its arrival; a simulated one's is the market's, not the clock's (ahead of
    it at speed above 1), so it is stamped when written."""
    at_ms = int(book.at.timestamp() * 1000)
    if book.received_at is not None:
        seen_ms = int(book.received_at.timestamp() * 1000)
    else:
        seen_ms = at_ms if venue == RECEIVED_STAMPED else int(time.time() * 1000)
    return TopOfBook(book.symbol, book.bid_price, book.ask_price, at_ms, seen_ms=seen_ms)


async def cache_latest(client: aioredis.Redis, events: Sequence[MarketEvent], venue: str) -> None:
    """Latest price and top of book of each symbol in Redis (the newest event wins)."""
    prices: dict[str, str] = {}
    books: dict[str, BookTicker] = {}
    for event in events:
        if isinstance(event, Trade):
            prices[event.symbol] = str(event.price)
        elif isinstance(event, Kline):
            prices[event.symbol] = str(event.close)
        else:
            books[event.symbol] = event
    if not prices and not books:
        return
    async with client.pipeline(transaction=False) as pipe:
        for symbol, price in prices.items():
            pipe.set(PRICE_KEY.format(symbol=symbol), price)
        for symbol, book in books.items():
            message = to_message(book, venue)
            pipe.hset(
                BOOK_KEY.format(symbol=symbol),
                mapping={key: str(value) for key, value in message.items() if key != "type"},
            )
            quote = quote_fields(as_quote(book, venue))
            pipe.hset(book_key(symbol), mapping=quote)  # type: ignore[arg-type]
        await pipe.execute()


async def publish_events(
    exchange: AbstractExchange, events: Sequence[MarketEvent], venue: str
) -> None:
    """Publish every event (persistent JSON), waiting for all the broker's confirms, at most
    PUBLISH_TIMEOUT (a broker that withholds them would hold the sink for ever)."""
    try:
        async with asyncio.timeout(PUBLISH_TIMEOUT):
            await _publish_all(exchange, events, venue)
    except TimeoutError:
        raise TimeoutError(
            f"RabbitMQ did not confirm {len(events)} market events within {PUBLISH_TIMEOUT:g}s "
            "(a memory or disk alarm?)"
        ) from None


async def _publish_all(
    exchange: AbstractExchange, events: Sequence[MarketEvent], venue: str
) -> None:
    await asyncio.gather(
        *(
            exchange.publish(
                aio_pika.Message(
                    json.dumps(to_message(event, venue)).encode(),
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=routing_key(event),
                mandatory=False,  # a kind nobody is bound to (trades, often) is no error
            )
            for event in events
        )
    )


class EventWriter:
    """Stores, caches and publishes batches of accepted events."""

    def __init__(self, connections: Connections, metrics: MarketMetrics, venue: str) -> None:
        self.connections = connections
        self.metrics = metrics
        self.venue = venue
        """Where the quotes come from (the service's source), named in every book ticker."""

    async def write(self, events: Sequence[MarketEvent]) -> None:
        klines, trades, books = split(events)
        pool = self.connections.pool()
        self.metrics.wrote("candles", await upsert_klines(pool, klines))
        self.metrics.wrote("trades", await insert_trades(pool, trades))
        self.metrics.wrote("book_tickers", await insert_book_tickers(pool, books))
        await cache_latest(self.connections.redis(), events, self.venue)
        channel = self.connections.channel()
        exchange = await channel.get_exchange(MARKET_DATA.name, ensure=False)
        await publish_events(exchange, events, self.venue)

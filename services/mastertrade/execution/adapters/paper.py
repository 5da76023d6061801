"""The paper venue: fills approved orders against the top of book in Redis, in PostgreSQL.

`execute_many(client_order_ids)` (and `execute` of one) is idempotent: it does nothing to an
order already filled, rejected or cancelled, and a batch writes only if no other batch changed
the books since it read them (else it is decided again), so a redelivered message, a reconcile
at start-up and a second replica can all call it and an order fills at most once. One statement
books the fills, the balance, the positions, the equity and the events together (see
paper_batch.py); its sender sends the events right after the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

import asyncpg
import redis.asyncio as aioredis

from mastertrade.core.db import Connection
from mastertrade.core.messages import ApprovedOrder, OrderEvent
from mastertrade.core.outbox import OutboxSender, Written, mark_sent
from mastertrade.execution.adapters import books
from mastertrade.execution.adapters.paper_batch import (
    BooksRead,
    Costs,
    RunningBooks,
    decide_order,
    read_books,
    write_books,
)
from mastertrade.execution.adapters.quotes import Quotes, mids
from mastertrade.execution.domain.paper import Quote

logger = logging.getLogger("mastertrade.execution")


@dataclass(frozen=True)
class Executed:
    """What a batch changed: the events of its orders, in the order asked for, and their
    outbox rows as (id, event), which the venue's sender gets once they are committed."""

    events: list[OrderEvent]
    written: list[Written]


@dataclass(frozen=True)
class PaperConfig:
    quote_asset: str = "USDT"
    fee_rate: Decimal = Decimal("0.001")
    slippage: Decimal = Decimal("0.0005")
    max_price_age: float = 60.0
    environment: str = "paper"
    max_price_deviation: Decimal = Decimal(0)


class PaperVenue:
    """Paper execution on the shared database and the market data's Redis quotes."""

    in_flight: tuple[str, ...] = ("new", "submitted")

    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        redis: Callable[[], aioredis.Redis],
        config: PaperConfig,
        sender: OutboxSender | None = None,
    ) -> None:
        self.pool, self.config, self.sender = pool, config, sender
        self.quotes = Quotes(redis, config.max_price_age)
        self.costs = Costs(config.fee_rate, config.slippage, config.quote_asset,
                           config.max_price_deviation)  # fmt: skip
        self._held_when_read: set[str] = set()

    async def quote(self, symbol: str) -> Quote | str:
        return await self.quotes.quote(symbol)

    async def marks(self, symbols: Iterable[str]) -> dict[str, Decimal]:
        return await self.quotes.marks(symbols)

    async def execute(self, client_order_id: str) -> OrderEvent | None:
        """Fill, open or reject the order; None when there was nothing to do."""
        events = await self.execute_many([client_order_id])
        return events[0] if events else None

    async def execute_many(self, client_order_ids: Sequence[str]) -> list[OrderEvent]:
        """Execute the orders as one batch (see paper_batch.py); the events of those that
        changed, in the order asked for."""
        return (await self._execute(client_order_ids)).events

    async def record_and_execute(self, orders: Sequence[ApprovedOrder]) -> Executed:
        """Record the approved orders (those known already are left) and execute them, in one
        statement. A paper order is sent nowhere, so no outcome exists outside that statement
        for a record to keep: a crash before it leaves neither the record nor the fill, and the
        unacknowledged message comes again."""
        return await self._execute([o.client_order_id for o in orders], orders)

    async def _execute(
        self, client_order_ids: Sequence[str], new: Sequence[ApprovedOrder] = ()
    ) -> Executed:
        """Record `new` orders and execute the batch; its events go to the sender, when there is
        one, once committed (without one, the executor's outbox flush sends them)."""
        marking: contextlib.AbstractContextManager[list[int]] = (
            self.sender.marking() if self.sender else contextlib.nullcontext([])
        )
        with marking as sent:
            async with self.pool().acquire() as connection:
                executed = await self._execute_on(connection, client_order_ids, new, sent)
        if self.sender is not None:
            self.sender.send(executed.written)
        return executed

    async def _execute_on(
        self,
        connection: Connection,
        client_order_ids: Sequence[str],
        new: Sequence[ApprovedOrder],
        sent: Sequence[int],
    ) -> Executed:
        """Read, decide, write; decided again from a new read each time another batch wrote
        the books first, or a halt came on under a batch that buys."""
        env, asset = self.config.environment, self.config.quote_asset
        wanted = list(dict.fromkeys(client_order_ids))
        leased = self.sender is not None
        attempt = 0
        while True:
            attempt += 1
            read, quotes = await self._read_with_quotes(connection, wanted, new)
            running = self._decide(read, quotes) if read.orders else None
            if running is None or not running.updates:  # nothing changed: only the sent to mark
                await mark_sent(connection, sent)
                return Executed([], [])
            written = await write_books(
                connection, env, asset, running, read, sent=sent, leased=leased
            )
            if written is not None:
                return Executed(running.events, written)
            logger.debug("paper books or halt changed under a batch of %d orders (attempt %d): "
                         "deciding again", len(wanted), attempt)  # fmt: skip
            sent = ()  # marked by the statement that lost

    async def _read_with_quotes(
        self, connection: Connection, wanted: Sequence[str], new: Sequence[ApprovedOrder]
    ) -> tuple[BooksRead, dict[str, Quote | str]]:
        """The books and the quotes the batch needs: the quotes of the new orders' symbols and
        of those held at the last read are fetched while the books are read, any other after."""
        env, asset = self.config.environment, self.config.quote_asset
        guess = {order.symbol for order in new} | self._held_when_read
        reading = asyncio.ensure_future(read_books(connection, env, asset, wanted, new))
        try:
            quotes = await self.quotes.many(guess)
        except BaseException:
            # the connection goes back to the pool only once its read is over
            await asyncio.gather(reading, return_exceptions=True)
            raise
        read = await reading
        self._held_when_read = set(read.held)
        if missing := {*read.held, *(order["symbol"] for order in read.orders)} - quotes.keys():
            quotes |= await self.quotes.many(missing)
        return read, quotes

    def _decide(self, read: BooksRead, quotes: dict[str, Quote | str]) -> RunningBooks:
        """Each unfinished order decided in turn against the books read with it."""
        running = RunningBooks(read.free, read.locked, read.held, mids(quotes),
                               dict(read.selling), read.halted)  # fmt: skip
        for order in read.orders:
            decide_order(order, quotes[order["symbol"]], running, self.costs)
        return running

    async def halt_pending(self) -> bool:
        """Never: every round (ORDER_POLL_SECONDS) already cancels the orders a halt stops."""
        return False

    async def revalue(self) -> Decimal | None:
        """Store the account's equity at current marks (for the risk manager); None when a
        position has no mark (nothing stored)."""
        env = self.config.environment
        async with self.pool().acquire() as connection, connection.transaction():
            # the balance lock orders this after any fill in progress, so it values its result
            await books.lock_balance(connection, env, self.config.quote_asset)
            held = await books.fetch_positions(connection, env)
            marks = await self.marks(held)
            return await books.store_equity(connection, env, self.config.quote_asset, marks)

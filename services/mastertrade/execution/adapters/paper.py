"""The paper venue: fills approved orders against the top of book in Redis, in PostgreSQL.

`execute(client_order_id)` is idempotent: under the order's row lock it does nothing to an
order already filled, rejected or cancelled, so a redelivered message, a reconcile at start-up
and a second replica can all call it and the order fills at most once. One transaction books
the fill, the balance, the position, the equity and the `order.filled` event together.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

import asyncpg
import redis.asyncio as aioredis

from mastertrade.core.db import Connection
from mastertrade.core.messages import OrderEvent
from mastertrade.execution.adapters import books
from mastertrade.execution.adapters.orders import (
    TERMINAL,
    announce,
    build_event,
    lock_order,
    reject_order,
)
from mastertrade.execution.adapters.quotes import Quotes, mids
from mastertrade.execution.domain.ledger import LedgerError, Position, apply_fill, derive_equity
from mastertrade.execution.domain.paper import Quote, build_fill, crosses, reserve_for_buy
from mastertrade_model.topology import ORDERS

OPENED = """
UPDATE orders SET status = 'submitted', reserved = $2, updated_at = now()
WHERE client_order_id = $1
"""


@dataclass(frozen=True)
class Account:
    """The locked balance and positions, and the marks to value them at."""

    free: Decimal
    locked: Decimal
    held: dict[str, Position]
    marks: dict[str, Decimal]


@dataclass(frozen=True)
class PaperConfig:
    quote_asset: str = "USDT"
    fee_rate: Decimal = Decimal("0.001")
    slippage: Decimal = Decimal("0.0005")
    max_price_age: float = 60.0
    environment: str = "paper"


class PaperVenue:
    """Paper execution on the shared database and the market data's Redis quotes."""

    in_flight: tuple[str, ...] = ("new", "submitted")

    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        redis: Callable[[], aioredis.Redis],
        config: PaperConfig,
    ) -> None:
        self.pool, self.config = pool, config
        self.quotes = Quotes(redis, config.max_price_age)

    async def quote(self, symbol: str) -> Quote | str:
        return await self.quotes.quote(symbol)

    async def marks(self, symbols: Iterable[str]) -> dict[str, Decimal]:
        return await self.quotes.marks(symbols)

    async def execute(self, client_order_id: str) -> OrderEvent | None:
        """Fill, open or reject the order; None when there was nothing to do.

        Locks in the books' order (order, balance, every position), then reads the quote and
        the marks in one Redis round trip and books the outcome."""
        env, asset = self.config.environment, self.config.quote_asset
        async with self.pool().acquire() as connection, connection.transaction():
            order = await lock_order(connection, client_order_id)
            if order is None or order["status"] in TERMINAL:
                return None
            free, locked = await books.lock_balance(connection, env, asset)
            held = await books.lock_positions(connection, env)
            quotes = await self.quotes.many([*held, order["symbol"]])
            account = Account(free, locked, held, mids(quotes))
            return await self._decide(connection, order, quotes[order["symbol"]], account)

    async def _decide(
        self, connection: Connection, order: asyncpg.Record, quote: Quote | str, account: Account
    ) -> OrderEvent | None:
        is_open = order["status"] == "submitted"
        if isinstance(quote, str):
            return None if is_open else await reject_order(connection, order, quote)
        limit = order["price"] if order["type"] == "limit" else None
        if limit is not None and not crosses(order["side"], limit, quote):
            return None if is_open else await self._open(connection, order, account)
        return await self._fill(connection, order, quote, account)

    async def _open(
        self, connection: Connection, order: asyncpg.Record, account: Account
    ) -> OrderEvent:
        """Rest a limit order; a buy holds back its most expensive cost."""
        reserve = Decimal(0)
        env, asset = self.config.environment, self.config.quote_asset
        if order["side"] == "buy":
            reserve = reserve_for_buy(order["quantity"], order["price"], self.config.fee_rate)
            if reserve > account.free:
                reason = f"insufficient {asset} balance: the limit order holds {reserve}, " \
                    f"{account.free} is available"  # fmt: skip
                return await reject_order(connection, order, reason)
            await books.set_balance(connection, env, asset, account.free - reserve,
                                    account.locked + reserve)  # fmt: skip
        await connection.execute(OPENED, order["client_order_id"], reserve)
        event = build_event(order, "submitted")
        await announce(connection, event)
        return event

    async def _fill(
        self, connection: Connection, order: asyncpg.Record, quote: Quote, account: Account
    ) -> OrderEvent:
        env, asset, symbol = self.config.environment, self.config.quote_asset, order["symbol"]
        free, locked, reserved = account.free, account.locked, order["reserved"]
        costs = (self.config.fee_rate, self.config.slippage)
        limit = order["price"] if order["type"] == "limit" else None
        fill = build_fill(order["side"], order["quantity"], quote, costs, limit)
        position = account.held.get(symbol, Position())
        try:
            cash, position = apply_fill(free + reserved, position, fill, symbol, asset)
        except LedgerError as error:
            await books.set_balance(connection, env, asset, free + reserved, locked - reserved)
            return await reject_order(connection, order, str(error))
        marks = account.marks | {symbol: (quote.bid + quote.ask) / 2}
        value, equity = derive_equity(cash + locked - reserved, account.held | {symbol: position},
                                      marks)  # fmt: skip
        changes = {"filled_quantity": fill.quantity, "average_price": fill.price, "fee": fill.fee}
        event = build_event(order, "filled", **changes)
        await connection.execute(
            books.BOOK_FILL, env, asset, cash, locked - reserved, symbol, position.quantity,
            position.average_price, order["client_order_id"], fill.price, fill.quantity,
            fill.fee, value, equity, ORDERS.name, f"order.{event.status}",
            json.dumps(event.to_json()),
        )  # fmt: skip
        return event

    async def revalue(self) -> Decimal:
        """Store the account's equity at current marks (for the risk manager)."""
        env = self.config.environment
        async with self.pool().acquire() as connection, connection.transaction():
            # the balance lock orders this after any fill in progress, so it values its result
            await books.lock_balance(connection, env, self.config.quote_asset)
            held = await books.fetch_positions(connection, env)
            marks = await self.marks(held)
            return await books.store_equity(connection, env, self.config.quote_asset, marks)
